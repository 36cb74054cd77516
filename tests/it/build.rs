//! `runseal-agent build` through the real binaries: runseald, the runseal CLI to set secrets and
//! mint build tokens, and runseal-agent running real build commands (pip against a private
//! index, shells reading secret files). Secret values in these tests are random, and no
//! assertion prints one: failures describe what leaked where, with values redacted.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{all_files, contains, ok, runseal, runseal_stdin, stderr, stdout, Daemon};
use rand::Rng;
use sha2::{Digest, Sha256};

struct Fleet {
    dir: tempfile::TempDir,
    d: Daemon,
    key: String,
}

impl Fleet {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), &[], &[]);
        let key = d.admin_key();
        let f = Self { dir, d, key };
        for p in ["work", "tmp", "home"] {
            std::fs::create_dir_all(f.path(p)).unwrap();
        }
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cli(&self, args: &[&str]) -> String {
        ok(runseal(&self.d.addr, &self.key, args))
    }

    /// Sets a secret with its value on stdin (never in an argument).
    fn set(&self, env: &str, name: &str, value: &str) {
        let pair = format!("{name}=-");
        let out = runseal_stdin(
            &self.d.addr,
            &self.key,
            &["secrets", "set", &pair, "--env", env],
            Some(value.as_bytes()),
        );
        assert!(out.status.success(), "set failed: {}", stderr(&out));
    }

    fn build_token(&self, env: &str) -> String {
        self.cli(&["runner-token", "issue", "--purpose", "build", "--env", env])
            .trim()
            .to_string()
    }

    /// `runseal-agent build ARGS` in work/, with the server address and the token and nothing
    /// else of the test's environment but PATH; TMPDIR and HOME point into the fleet's dir.
    fn agent(&self, token: &str, args: &[&str]) -> Command {
        let mut c = common::agent(&self.d.addr, token, &[&["build"], args].concat());
        c.current_dir(self.path("work"))
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"));
        c
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path("work").join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A random value with characters that URL- and base64-encoding change.
fn random_value(prefix: &str) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=?&%:@";
    let mut rng = rand::thread_rng();
    let tail: String = (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

/// A random token usable as the password of an URL without encoding.
fn random_token() -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (0..40)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    format!("tok_{tail}")
}

/// The forms of a value a leak check looks for: raw, percent-encoded, base64.
fn leak_forms(value: &str) -> Vec<Vec<u8>> {
    let pct: String =
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    vec![
        value.as_bytes().to_vec(),
        pct.into_bytes(),
        STANDARD.encode(value).into_bytes(),
        URL_SAFE_NO_PAD.encode(value).into_bytes(),
    ]
}

fn leaks(haystack: &[u8], value: &str) -> bool {
    leak_forms(value).iter().any(|f| contains(haystack, f))
}

/// Text for a failure message, with every form of `value` replaced by <VALUE>.
fn redacted(bytes: &[u8], value: &str) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    for f in leak_forms(value) {
        s = s.replace(&*String::from_utf8_lossy(&f), "<VALUE>");
    }
    s
}

/// Files under `dir` that hold any form of `value`.
fn files_holding(dir: &Path, value: &str) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|(_, bytes)| leaks(bytes, value))
        .map(|(p, _)| p)
        .collect()
}

/// The interpreter python3 resolves to (pyenv shims need the real HOME, which tests replace).
fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 (with pip) is needed for the build tests");
    assert!(out.status.success(), "python3 failed: {}", stderr(&out));
    PathBuf::from(stdout(&out).trim())
}

/// The private index of tests/fixtures/private_index.py, killed on drop.
struct Index {
    child: Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Index {
    fn start(dir: &Path, token: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, token).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/private_index.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--wheel-dir")
            .arg(dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the index did not start: {line:?}"))
            .parse()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Acceptance 1: pip installs from a private index with `${INDEX_TOKEN}` in its requirements,
/// and the token is nowhere: not in pip's output as the agent prints it, not in pip's
/// environment or arguments, not in the target dir, not in any file written during the build.
#[test]
fn pip_installs_from_a_private_index_and_the_token_is_nowhere() {
    let f = Fleet::start();
    let token = random_token();
    f.set("main", "INDEX_TOKEN", &token);
    let index = Index::start(&f.dir.path().join("index"), &token);

    // pip's own process records its environment and argv when it starts (sitecustomize runs
    // in every Python process), so the test sees exactly what pip got.
    let hook = f.path("hook");
    let dumps = f.path("dumps");
    std::fs::create_dir_all(&hook).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    std::fs::write(
        hook.join("sitecustomize.py"),
        "import json, os\n\
         d = os.environ.get('PYDUMP_DIR')\n\
         if d:\n\
         \x20   argv = open('/proc/self/cmdline', 'rb').read().decode(errors='replace').split('\\0')\n\
         \x20   with open(os.path.join(d, '%d.json' % os.getpid()), 'w') as f:\n\
         \x20       json.dump({'argv': argv, 'env': dict(os.environ)}, f)\n",
    )
    .unwrap();

    f.write(
        "reqs.txt",
        &format!(
            "--index-url http://ci:${{INDEX_TOKEN}}@127.0.0.1:{}/simple\nsecretpkg==1.0\n",
            index.port
        ),
    );
    let target = f.path("target");
    let build_token = f.build_token("main");
    let out = f
        .agent(
            &build_token,
            &[
                "--requirements",
                "reqs.txt",
                "--",
                python().to_str().unwrap(),
            ],
        )
        .args(["-m", "pip", "install", "--no-cache-dir", "--target"])
        .arg(&target)
        .args(["-r", "{requirements}"])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PYTHONPATH", &hook)
        .env("PYDUMP_DIR", &dumps)
        .output()
        .unwrap();
    let shown = format!(
        "stdout:\n{}\nstderr:\n{}",
        redacted(&out.stdout, &token),
        redacted(&out.stderr, &token)
    );
    assert!(
        out.status.success(),
        "pip failed ({:?}):\n{shown}",
        out.status.code()
    );
    assert!(
        stdout(&out).contains("Successfully installed secretpkg-1.0"),
        "{shown}"
    );
    assert!(
        target.join("secretpkg/__init__.py").is_file(),
        "the package was not installed into the target dir"
    );
    assert!(
        index
            .log()
            .contains("GET /files/secretpkg-1.0-py3-none-any.whl 200"),
        "pip did not download the wheel with the token: {}",
        index.log()
    );

    // The output, as the agent printed it.
    assert!(
        !leaks(&out.stdout, &token),
        "the token is in pip's stdout:\n{shown}"
    );
    assert!(
        !leaks(&out.stderr, &token),
        "the token is in pip's stderr:\n{shown}"
    );

    // pip's environment and arguments.
    let dumped = all_files(&dumps);
    assert!(!dumped.is_empty(), "pip's start was not recorded");
    let mut saw_fd = false;
    for (path, bytes) in &dumped {
        assert!(
            !leaks(bytes, &token),
            "the token is in pip's environment or argv ({})",
            path.display()
        );
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let env = v["env"].as_object().unwrap();
        let runseal_vars: Vec<&String> = env.keys().filter(|k| k.starts_with("RUNSEAL_")).collect();
        assert!(
            runseal_vars.is_empty(),
            "pip got the agent's settings: {runseal_vars:?}"
        );
        saw_fd |= v["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap_or("").starts_with("/dev/fd/"));
    }
    assert!(saw_fd, "pip did not get the requirements as /dev/fd/N");

    // Every file written during the build: target, TMPDIR, HOME, the working dir.
    for dir in ["target", "tmp", "home", "work"] {
        let holding = files_holding(&f.path(dir), &token);
        assert!(
            holding.is_empty(),
            "the token was written to disk: {holding:?}"
        );
    }
    assert!(
        !all_files(&f.path("target")).is_empty(),
        "the scan of the target dir saw no file"
    );
}

/// Acceptance 2 (through the binary): a referenced name that is not set stops the build
/// before the command runs, naming it, and leaves the single-use token unspent; a malformed
/// template names its line and column.
#[test]
fn unknown_names_and_malformed_templates_stop_the_build_before_the_command() {
    let f = Fleet::start();
    f.set("main", "PRESENT", "present-value");
    let token = f.build_token("main");
    f.write(
        "reqs.txt",
        "pkg @ https://${PRESENT}@host/p\nother @ https://${MISSING_ONE}@h/q\n",
    );
    let marker = f.path("work").join("ran");
    let out = f
        .agent(
            &token,
            &[
                "--requirements",
                "reqs.txt",
                "--",
                "sh",
                "-c",
                "touch ran",
                "sh",
                "{requirements}",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("MISSING_ONE"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("present-value"));
    assert!(
        !marker.exists(),
        "the command ran although a secret is missing"
    );

    f.write("bad.txt", "ok==1\npkg ${A-B}\n");
    let out = f
        .agent(
            &token,
            &[
                "--requirements",
                "bad.txt",
                "--",
                "sh",
                "-c",
                "touch ran",
                "sh",
                "{requirements}",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.txt:2:5"), "{}", stderr(&out));
    assert!(stderr(&out).contains("A-B"), "{}", stderr(&out));
    assert!(!marker.exists());

    // Neither refusal spent the token: once the secret is set, it runs the build, once.
    f.set("main", "MISSING_ONE", "now-set");
    let cmd = [
        "--requirements",
        "reqs.txt",
        "--",
        "sh",
        "-c",
        "wc -l < \"$1\"",
        "sh",
        "{requirements}",
    ];
    let out = f.agent(&token, &cmd).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "2");
    let out = f.agent(&token, &cmd).output().unwrap();
    assert_eq!(out.status.code(), Some(77), "a build token is single-use");
    assert!(
        stderr(&out).contains("already been used"),
        "{}",
        stderr(&out)
    );
}

/// Acceptance 3: a secret file is readable through its placeholder path, sealed, in memory
/// only; the command's environment holds neither the value nor the credential.
#[test]
fn secret_files_are_readable_sealed_and_never_on_disk() {
    let f = Fleet::start();
    let value = random_value("hf_");
    f.set("main", "HF_TOKEN", &value);
    let token = f.build_token("main");
    let script = r#"
        readlink "$1"
        sha256sum < "$1" | cut -d' ' -f1
        if (printf x >> "$1") 2>/dev/null; then echo writable; else echo sealed; fi
        env > env.txt
    "#;
    let out = f
        .agent(
            &token,
            &[
                "--secret-file",
                "hf=HF_TOKEN",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                "{secret:hf}",
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", redacted(&out.stderr, &value));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", redacted(&out.stdout, &value));
    assert!(
        lines[0].starts_with("/memfd:"),
        "not an in-memory file: {}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        hex::encode(Sha256::digest(value.as_bytes())),
        "the file does not hold exactly the value"
    );
    assert_eq!(lines[2], "sealed");
    let env = std::fs::read_to_string(f.path("work/env.txt")).unwrap();
    assert!(
        !env.contains("RUNSEAL_"),
        "the command got the agent's settings or credential"
    );
    assert!(
        !leaks(env.as_bytes(), &value),
        "the value is in the command's environment"
    );
    assert!(
        !env.contains(&token),
        "the credential is in the command's environment"
    );
    let holding = files_holding(f.dir.path(), &value);
    assert!(holding.is_empty(), "the value is on disk: {holding:?}");
    // The daemon's audit log records the fetch by name.
    let audit = f.cli(&["audit", "--output", "json"]);
    assert!(
        audit.contains("build.secrets") && audit.contains("HF_TOKEN"),
        "{audit}"
    );
    assert!(!leaks(audit.as_bytes(), &value));
}

/// Acceptance 4: the cache key is the same for staging and production, whose values (and so
/// rendered requirements) differ; it follows the template text.
#[test]
fn the_cache_key_is_the_same_in_every_environment() {
    let f = Fleet::start();
    for env in ["staging", "production"] {
        f.cli(&["env", "create", env]);
        f.set(env, "INDEX_TOKEN", &random_token());
    }
    let reqs = f.write(
        "reqs.txt",
        "--index-url https://ci:${INDEX_TOKEN}@pypi.example/simple\nrequests==2.32.3\n",
    );
    let key_of = |env: &str| {
        let out = Command::new(common::RUNSEAL)
            .args(["build", "cache-key", "--requirements"])
            .arg(&reqs)
            .env_clear()
            .env("RUNSEAL_ENV", env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let rendered_hash = |env: &str| {
        let token = f.build_token(env);
        let out = f
            .agent(
                &token,
                &[
                    "--env",
                    env,
                    "--requirements",
                    "reqs.txt",
                    "--",
                    "sh",
                    "-c",
                    "sha256sum < \"$1\"",
                    "sh",
                    "{requirements}",
                ],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let staging = key_of("staging");
    assert_eq!(staging.len(), 64);
    assert!(staging.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(staging, key_of("production"));
    assert_ne!(
        rendered_hash("staging"),
        rendered_hash("production"),
        "the environments' values differ, so their rendered requirements do"
    );
    f.write(
        "reqs.txt",
        "--index-url https://ci:${INDEX_TOKEN}@pypi.example/simple\nrequests==2.32.4\n",
    );
    assert_ne!(key_of("staging"), staging, "the key follows the template");
    let out = Command::new(common::RUNSEAL)
        .args(["build", "cache-key", "--requirement", "x ${1X}"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--requirement #1:1:3"),
        "{}",
        stderr(&out)
    );
}

/// Acceptance 5: exit codes pass through, death by a signal reads 128+N, and signals sent to
/// the agent reach the command.
#[test]
fn exit_status_and_signals_pass_through() {
    let f = Fleet::start();
    let run = |script: &str| {
        let mut c = f.agent("unused:unused", &["--", "sh", "-c", script]);
        c.output().unwrap()
    };
    assert_eq!(run("exit 7").status.code(), Some(7));
    assert_eq!(run("exit 0").status.code(), Some(0));
    assert_eq!(run("kill -KILL $$").status.code(), Some(137));
    assert_eq!(run("kill -TERM $$").status.code(), Some(143));

    f.set("main", "K", "signal-test-value");
    let token = f.build_token("main");
    let script = r#"
        trap 'echo got USR1' USR1
        trap 'echo got TERM; kill $!; exit 42' TERM
        sleep 30 >/dev/null 2>&1 &
        echo ready
        while :; do wait; done
    "#;
    let mut child = f
        .agent(
            &token,
            &[
                "--secret-file",
                "k=K",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                "{secret:k}",
            ],
        )
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    common::signal(&child, "USR1");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got USR1", "SIGUSR1 was not forwarded");
    common::signal(&child, "TERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest.trim(), "got TERM", "SIGTERM was not forwarded");
    assert_eq!(
        status.code(),
        Some(42),
        "the command's status after the signal"
    );
}

/// The masker: the value, its URL-encoded and base64 forms, on stdout and stderr, also when
/// the command writes the value in two pieces with a pause between them.
#[test]
fn output_is_masked_including_encoded_and_split_values() {
    let f = Fleet::start();
    let value = random_value("mask_");
    f.set("main", "API_KEY", &value);
    let token = f.build_token("main");
    let script = r#"
        v=$(cat "$1")
        echo "raw:$v"
        printf 'split:'; printf %s "$v" | head -c 7; sleep 0.3; printf '%s\n' "$v" | tail -c +8
        echo "b64:$(printf %s "$v" | base64 -w0)"
        echo "url:$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$1")"
        echo "err:$v" >&2
        echo "unrelated text stays"
    "#;
    let out: Output = f
        .agent(
            &token,
            &[
                "--secret-file",
                "k=API_KEY",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                "{secret:k}",
            ],
        )
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", redacted(&out.stderr, &value));
    assert!(
        out.stdout == b"raw:***\nsplit:***\nb64:***\nurl:***\nunrelated text stays\n",
        "stdout was not masked as expected:\n{}",
        redacted(&out.stdout, &value)
    );
    assert!(
        out.stderr == b"err:***\n",
        "stderr was not masked as expected:\n{}",
        redacted(&out.stderr, &value)
    );
}

/// The masker streams: a quarter of a gigabyte of output passes unchanged (no value in it)
/// while the agent's peak memory stays small.
#[test]
fn a_large_log_passes_in_constant_memory() {
    let f = Fleet::start();
    f.set("main", "K", "a-value-not-in-the-log");
    let token = f.build_token("main");
    const BYTES: u64 = 256 * 1024 * 1024;
    let script =
        format!("head -c {BYTES} /dev/zero | tr '\\0' 'x'; grep VmHWM /proc/$PPID/status >&2");
    let mut child = f
        .agent(
            &token,
            &[
                "--secret-file",
                "k=K",
                "--",
                "sh",
                "-c",
                &script,
                "sh",
                "{secret:k}",
            ],
        )
        .spawn()
        .unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut all_x = true;
    loop {
        let n = stdout_pipe.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all_x &= buf[..n].iter().all(|b| *b == b'x');
        total += n as u64;
    }
    assert!(child.wait().unwrap().success());
    let err = err.join().unwrap();
    assert_eq!(total, BYTES);
    assert!(all_x, "the output was changed");
    let kb: u64 = err
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM of the agent: {err}"));
    assert!(
        kb < 64 * 1024,
        "the agent peaked at {kb} kB for {BYTES} bytes of output"
    );
}

/// Credentials: a run token cannot fetch build secrets, a build token cannot start a runner,
/// admin does not imply build:ENV, and a key with build:ENV works for its environment only.
#[test]
fn build_credentials_are_scoped() {
    let f = Fleet::start();
    f.set("main", "K", "scoped-value");
    f.cli(&["env", "create", "staging"]);
    let cmd = [
        "--secret-file",
        "k=K",
        "--",
        "sh",
        "-c",
        "cat \"$1\" >/dev/null",
        "sh",
        "{secret:k}",
    ];

    let run_token = f.cli(&["runner-token", "issue"]).trim().to_string();
    let out = f.agent(&run_token, &cmd).output().unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(stderr(&out).contains("--purpose build"), "{}", stderr(&out));

    let build_token = f.build_token("main");
    let out = common::agent(&f.d.addr, &build_token, &["--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "a build token started a runner"
    );
    assert!(
        stderr(&out).contains("was minted for build, not for starting a runner"),
        "{}",
        stderr(&out)
    );

    let out = f.agent(&f.key, &cmd).output().unwrap();
    assert_eq!(out.status.code(), Some(77), "admin fetched build secrets");
    assert!(stderr(&out).contains("build:ENV"), "{}", stderr(&out));

    let key = f
        .cli(&["keys", "create", "--scope", "build:main"])
        .trim()
        .to_string();
    let out = f.agent(&key, &cmd).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = f.agent(&key, &cmd).output().unwrap();
    assert!(out.status.success(), "a key is not used up");
    let mut staging = f.agent(&key, &cmd);
    staging.env("RUNSEAL_ENV", "staging");
    let out = staging.output().unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(stderr(&out).contains("build:staging"), "{}", stderr(&out));

    // Placeholders without their source (and the reverse) are usage errors.
    let out = f
        .agent(&key, &["--", "echo", "{requirements}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let out = f
        .agent(&key, &["--secret-file", "k=K", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}

/// The masker also catches base64 wrapped as `base64` (76 columns) and `openssl base64` (64)
/// print it, and JSON string escapes of the value (`\/`, `\uXXXX`, in any mix); a value too short
/// to mask is warned about by name and left alone.
#[test]
fn wrapped_base64_and_json_escapes_are_masked_and_short_values_warned_about() {
    let f = Fleet::start();
    let value = format!("{}/{}-é", random_value("wrap_"), random_value("more_"));
    f.set("main", "LONG_KEY", &value);
    f.set("main", "PIN", "42");
    let token = f.build_token("main");
    let script = r#"
        v=$(cat "$1")
        printf %s "$v" | base64
        printf %s "$v" | openssl base64
        python3 -c 'import json,sys; print(json.dumps({"k": open(sys.argv[1]).read()}))' "$1"
        python3 -c 'import json,sys; v=open(sys.argv[1]).read(); print(json.dumps(v).replace("/", "\\/"))' "$1"
        python3 -c 'import sys; v=open(sys.argv[1]).read(); print("".join(c if i % 2 else "\\u%04x" % ord(c) for i, c in enumerate(v)))' "$1"
    "#;
    let out: Output = f
        .agent(
            &token,
            &[
                "--secret-file",
                "k=LONG_KEY",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                "{secret:k}",
            ],
        )
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", redacted(&out.stderr, &value));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = "***\n***\n{\"k\": \"***\"}\n\"***\"\n***\n";
    assert!(
        text == expected,
        "stdout was not masked as expected:\n{}",
        redacted(&out.stdout, &value)
    );

    // A short value: one warning naming the secret, never the value.
    let token = f.build_token("main");
    let out: Output = f
        .agent(
            &token,
            &[
                "--secret-file",
                "p=PIN",
                "--",
                "sh",
                "-c",
                "echo pin:$(cat \"$1\")",
                "sh",
                "{secret:p}",
            ],
        )
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("PIN") && !err.contains("42"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pin:42\n");
}
