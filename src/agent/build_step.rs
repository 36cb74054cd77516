//! `runseal-agent build`: one build step (an installer, `docker buildx build`) with the secrets
//! it references, without them ever being environment variables or files on disk.
//!
//! The agent parses the requirements templates (no values needed), fetches only the referenced
//! names with a `build` credential, renders into sealed memfds and hands them to the command as
//! `/dev/fd/N` through the placeholders `{requirements}` and `{secret:ID}`. The command's
//! environment is the agent's minus every `RUNSEAL_*` (the credential and its settings); its
//! stdout and stderr pass through the [`Masker`]; signals the agent receives are forwarded to
//! it, and its exit status becomes the agent's. Everything that can fail does so before the
//! command starts. Plaintext lives in zeroizing buffers and in the memfds only; nothing here
//! prints or logs a value.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use clap::Parser;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use zeroize::Zeroizing;

use super::mask::Masker;
use super::{
    call, check_command, load_credential, usage_error, AgentError, Connection, CredentialSource,
    Exit,
};
use crate::client::BuildSecrets;
use crate::exec;
use crate::names::{is_valid_secret_name, RESERVED_PREFIX};
use crate::template::{self, render_all, Template};

const USAGE: &str = "runseal-agent build [OPTIONS] -- COMMAND [ARGS]...";

/// The placeholder of the rendered requirements in the command's arguments.
pub const REQUIREMENTS_PLACEHOLDER: &str = "{requirements}";

/// After the command exits, how long output still in flight (from its children) is passed on.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// Read size of the command's output.
const CHUNK: usize = 16 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "runseal-agent build",
    version,
    about = "Run one build step with the secrets it references in memory-only files, its output masked",
    override_usage = USAGE
)]
pub struct BuildArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// A requirements template: `${NAME}` is the secret NAME, `$${` a literal `${`. Rendered in
    /// memory and passed as {requirements} (repeatable: the files are joined in order).
    #[arg(long = "requirements", value_name = "FILE")]
    pub requirements: Vec<PathBuf>,
    /// One more requirements line, a template like the files (repeatable; after the files).
    #[arg(long = "requirement", value_name = "LINE")]
    pub requirement: Vec<String>,
    /// Expose the secret NAME as a memory-only file at the placeholder {secret:ID}
    /// (e.g. docker buildx build --secret id=ID,src={secret:ID}). Repeatable.
    #[arg(long = "secret-file", value_name = "ID=NAME")]
    pub secret_files: Vec<String>,
    /// The build command and its arguments, with the placeholders.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Parses `runseal-agent build …` from an argv whose first item is the program name and whose
/// `build` has been removed. Usage errors are exit 64, `--help`/`--version` exit 0.
pub fn parse_args_from(
    argv: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<BuildArgs, ExitCode> {
    BuildArgs::try_parse_from(argv).map_err(|e| usage_error(&e, USAGE))
}

/// The requirements templates, as [`template::load`] reads them, with the agent's statuses.
fn load_templates(files: &[PathBuf], lines: &[String]) -> Result<Vec<Template>, AgentError> {
    template::load(files, lines).map_err(|e| {
        let exit = match e {
            template::LoadError::Unreadable { .. } => Exit::NoInput,
            _ => Exit::NotSet,
        };
        AgentError::new(exit, e.to_string())
    })
}

/// `--secret-file ID=NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretFile {
    id: String,
    name: String,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn parse_secret_files(raw: &[String]) -> Result<Vec<SecretFile>, AgentError> {
    let mut out: Vec<SecretFile> = Vec::with_capacity(raw.len());
    for r in raw {
        let (id, name) = r.split_once('=').ok_or_else(|| {
            AgentError::new(
                Exit::Usage,
                format!("--secret-file {r:?}: expected ID=NAME, e.g. hf_token=HF_TOKEN"),
            )
        })?;
        if !valid_id(id) {
            return Err(AgentError::new(
                Exit::Usage,
                format!("--secret-file: id {id:?} must be 1 to 64 characters A-Z, a-z, 0-9, '_', '-', '.'"),
            ));
        }
        if !is_valid_secret_name(name) {
            return Err(AgentError::new(
                Exit::Usage,
                format!("--secret-file {id}: {name:?} is not a valid secret name (A-Z, a-z, 0-9, '_', not starting with a digit)"),
            ));
        }
        if out.iter().any(|f| f.id == id) {
            return Err(AgentError::new(
                Exit::Usage,
                format!("--secret-file: id {id:?} is given twice"),
            ));
        }
        out.push(SecretFile {
            id: id.to_string(),
            name: name.to_string(),
        });
    }
    Ok(out)
}

/// The `{…}` placeholders in one argument: `requirements` or `secret:ID`.
fn placeholders(arg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.iter().position(|b| *b == b'{') {
        let after = &rest[open + 1..];
        match after.iter().position(|b| *b == b'}') {
            Some(close) => {
                let inner = &after[..close];
                if inner == b"requirements" || inner.starts_with(b"secret:") {
                    out.push(inner);
                    rest = &after[close + 1..];
                } else {
                    rest = after;
                }
            }
            None => break,
        }
    }
    out
}

/// Checks that every placeholder has its source and every source its placeholder.
fn check_placeholders(
    command: &[OsString],
    has_requirements: bool,
    files: &[SecretFile],
) -> Result<(), AgentError> {
    let used: Vec<Vec<u8>> = command
        .iter()
        .flat_map(|a| placeholders(a.as_bytes()).into_iter().map(<[u8]>::to_vec))
        .collect();
    let requirements_used = used.iter().any(|p| p == b"requirements");
    if has_requirements && !requirements_used {
        return Err(AgentError::new(
            Exit::Usage,
            "--requirements/--requirement given but the command has no {requirements}: put it where the installer takes a requirements file (pip install -r {requirements})",
        ));
    }
    if requirements_used && !has_requirements {
        return Err(AgentError::new(
            Exit::Usage,
            "the command uses {requirements} but no --requirements FILE or --requirement LINE is given",
        ));
    }
    for p in &used {
        if let Some(id) = p.strip_prefix(b"secret:") {
            if !files.iter().any(|f| f.id.as_bytes() == id) {
                return Err(AgentError::new(
                    Exit::Usage,
                    format!(
                        "the command uses {{secret:{}}} but no --secret-file {}=NAME is given",
                        String::from_utf8_lossy(id),
                        String::from_utf8_lossy(id)
                    ),
                ));
            }
        }
    }
    for f in files {
        let wanted = format!("secret:{}", f.id);
        if !used.iter().any(|p| p == wanted.as_bytes()) {
            return Err(AgentError::new(
                Exit::Usage,
                format!(
                    "--secret-file {}={} is not used: put {{secret:{}}} in the command",
                    f.id, f.name, f.id
                ),
            ));
        }
    }
    Ok(())
}

/// Replaces the placeholders of one argument with `/dev/fd/N` paths.
fn substitute(arg: &OsStr, requirements: Option<i32>, files: &[(String, i32)]) -> OsString {
    let mut s = arg.as_bytes().to_vec();
    let mut replace = |from: &str, fd: i32| {
        let from = from.as_bytes();
        let to = format!("/dev/fd/{fd}").into_bytes();
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            if s[i..].starts_with(from) {
                out.extend_from_slice(&to);
                i += from.len();
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        s = out;
    };
    if let Some(fd) = requirements {
        replace(REQUIREMENTS_PLACEHOLDER, fd);
    }
    for (id, fd) in files {
        replace(&format!("{{secret:{id}}}"), *fd);
    }
    OsString::from_vec(s)
}

/// A sealed memfd holding `content`: it cannot be written, grown or shrunk any more, and it
/// lives in memory only (it is never linked into a filesystem). Close-on-exec in the agent.
fn sealed_memfd(label: &str, content: &[u8]) -> Result<OwnedFd, AgentError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        AgentError::new(
            Exit::Config,
            format!("cannot create the in-memory file {label}: {what}: {e}"),
        )
    };
    let name = CString::new(format!("runseal-{label}")).map_err(|e| fail("name", &e))?;
    let fd = memfd_create(
        name.as_c_str(),
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| fail("memfd_create", &e))?;
    let mut file = File::from(fd);
    file.write_all(content).map_err(|e| fail("write", &e))?;
    let fd = OwnedFd::from(file);
    fcntl(
        &fd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_SEAL,
        ),
    )
    .map_err(|e| fail("seal", &e))?;
    Ok(fd)
}

/// The command's environment: the agent's minus every `RUNSEAL_*` (credential and settings),
/// and minus `CREDENTIALS_DIRECTORY` when the credential came from there.
fn child_env(source: Option<CredentialSource>) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let setting = k.as_bytes().starts_with(RESERVED_PREFIX.as_bytes());
            let credential_dir =
                source == Some(CredentialSource::SystemdCredential) && k == "CREDENTIALS_DIRECTORY";
            !setting && !credential_dir
        })
        .collect()
}

/// The exit status of the agent for the command's: its code, or 128+N after signal N.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        _ => Exit::Unavailable as u8,
    }
}

/// The whole of `runseal-agent build`.
pub fn run(args: BuildArgs) -> ExitCode {
    match prepare_and_run(args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => f.report(),
    }
}

fn prepare_and_run(args: BuildArgs) -> Result<u8, AgentError> {
    exec::sys::make_non_dumpable().map_err(|e| {
        AgentError::new(
            Exit::Config,
            format!("cannot make the agent non-dumpable: {e}"),
        )
    })?;
    let locked = exec::sys::lock_memory();
    tracing::debug!(locked, "memory locking");

    // Everything that can be checked without a value, before the credential is touched.
    let templates = load_templates(&args.requirements, &args.requirement)?;
    let files = parse_secret_files(&args.secret_files)?;
    let has_requirements = !templates.is_empty();
    check_placeholders(&args.command, has_requirements, &files)?;
    check_command(&args.command[0])?;
    let mut names: Vec<String> = crate::template::referenced_names(&templates)
        .into_iter()
        .collect();
    for f in &files {
        if !names.contains(&f.name) {
            names.push(f.name.clone());
        }
    }
    names.sort();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::new(Exit::Config, format!("cannot start the runtime: {e}")))?;

    let (secrets, source) = if names.is_empty() {
        (None, None)
    } else {
        let (cred, source) = load_credential(&args.conn)?;
        let env = args.conn.environment.clone().unwrap_or_default();
        let fetched = runtime.block_on(call(&args.conn, &cred, "the build secrets", |client| {
            let env = env.clone();
            let names = names.clone();
            async move { client.runners().build_secrets(&env, &names).await }
        }));
        drop(cred);
        (Some(fetched?), Some(source))
    };
    tracing::debug!(names = %names.join(","), "build secrets fetched");

    // Render into sealed memfds.
    let Rendered {
        requirements_fd,
        file_fds,
        masker,
    } = render(&templates, &files, secrets.as_ref())?;
    drop(secrets);

    let fd_paths: Vec<(String, i32)> = file_fds
        .iter()
        .map(|(id, fd)| (id.clone(), fd.as_raw_fd()))
        .collect();
    let argv: Vec<OsString> = args
        .command
        .iter()
        .map(|a| {
            substitute(
                a,
                requirements_fd.as_ref().map(AsRawFd::as_raw_fd),
                &fd_paths,
            )
        })
        .collect();
    let mut inherited: Vec<i32> = fd_paths.iter().map(|(_, fd)| *fd).collect();
    inherited.extend(requirements_fd.as_ref().map(AsRawFd::as_raw_fd));

    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(child_env(source))
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    exec::sys::prepare_child(&mut cmd, inherited);

    runtime.block_on(supervise(cmd, &masker, move || {
        // The child holds its own copies now; the agent's go.
        drop(requirements_fd);
        drop(file_fds);
    }))
}

/// What a build gets from its values: the rendered requirements and each secret file in a
/// sealed memfd, and the masker of its output.
struct Rendered {
    requirements_fd: Option<OwnedFd>,
    /// The id each file has in the command line, and its memfd.
    file_fds: Vec<(String, OwnedFd)>,
    masker: Masker,
}

/// Renders the values into sealed memfds; the plaintext buffers are zeroized as they go out of
/// scope.
fn render(
    templates: &[Template],
    files: &[SecretFile],
    secrets: Option<&BuildSecrets>,
) -> Result<Rendered, AgentError> {
    let lookup = |n: &str| {
        secrets
            .and_then(|s: &BuildSecrets| s.get(n))
            .map(|v| v.expose())
    };
    let requirements_fd = if !templates.is_empty() {
        let rendered = render_all(templates, lookup).map_err(|m| {
            AgentError::new(
                Exit::NotSet,
                format!("runseald did not return every referenced secret: {m}"),
            )
        })?;
        Some(sealed_memfd("requirements", &rendered)?)
    } else {
        None
    };
    let mut file_fds = Vec::with_capacity(files.len());
    for f in files {
        let value = lookup(&f.name).ok_or_else(|| {
            AgentError::new(
                Exit::NotSet,
                format!("runseald did not return the secret {}", f.name),
            )
        })?;
        file_fds.push((
            f.id.clone(),
            sealed_memfd(&format!("secret-{}", f.id), value)?,
        ));
    }
    for (name, value) in secrets.iter().flat_map(|s| s.secrets.iter()) {
        if crate::agent::mask::too_short_to_mask(value.expose()) {
            eprintln!(
                "runseal-agent build: warning: secret {name} is shorter than {} bytes: its value is not masked in the build's output",
                crate::agent::mask::MIN_MASKED_LEN
            );
        }
    }
    let masker = Masker::new(
        secrets
            .iter()
            .flat_map(|s| s.secrets.iter().map(|(_, v)| v.expose())),
    );
    Ok(Rendered {
        requirements_fd,
        file_fds,
        masker,
    })
}

/// Spawns the command, forwards signals to it, masks its output and returns its exit status
/// as the agent's. `spawned` runs right after the spawn.
async fn supervise(
    mut cmd: tokio::process::Command,
    masker: &Masker,
    spawned: impl FnOnce(),
) -> Result<u8, AgentError> {
    // Handlers first: a signal between spawn and registration would otherwise kill the agent
    // and orphan the command.
    let kinds = [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
        (SignalKind::user_defined1(), Signal::SIGUSR1),
        (SignalKind::user_defined2(), Signal::SIGUSR2),
    ];
    let mut streams = Vec::with_capacity(kinds.len());
    for (kind, sig) in kinds {
        let s = signal(kind)
            .map_err(|e| AgentError::new(Exit::Config, format!("cannot handle {sig}: {e}")))?;
        streams.push((s, sig));
    }
    let spawn_result = cmd.spawn();
    spawned();
    let mut child = spawn_result.map_err(|e| {
        let name = cmd.as_std().get_program().to_string_lossy().into_owned();
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                AgentError::new(Exit::NotFound, format!("{name}: command not found"))
            }
            std::io::ErrorKind::PermissionDenied => {
                AgentError::new(Exit::NotExecutable, format!("{name}: not executable ({e})"))
            }
            _ => AgentError::new(Exit::NotExecutable, format!("cannot execute {name}: {e}")),
        }
    })?;
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        // Both are piped above; a child without them cannot be masked, so it must not run on.
        let _ = child.start_kill();
        return Err(AgentError::new(
            Exit::Config,
            "the build command's output could not be captured",
        ));
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pumps = async {
        tokio::join!(
            pump(out, tokio::io::stdout(), masker, stop_rx.clone()),
            pump(err, tokio::io::stderr(), masker, stop_rx),
        )
    };
    tokio::pin!(pumps);
    let mut pumps_done = false;

    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            // The child is not reaped before `wait` returns, so its pid cannot be reused yet.
            let _ = kill(pid, sig);
            tracing::debug!(%sig, "signal forwarded to the build command");
        }
    };
    let status = loop {
        let next_signal = async {
            let waits = streams.iter_mut().map(|(s, sig)| {
                let sig = *sig;
                Box::pin(async move {
                    s.recv().await;
                    sig
                })
            });
            futures_select_all(waits).await
        };
        tokio::select! {
            status = child.wait() => break status,
            _ = &mut pumps, if !pumps_done => pumps_done = true,
            sig = next_signal => forward(sig),
        }
    };
    if !pumps_done {
        tokio::select! {
            _ = &mut pumps => {}
            _ = tokio::time::sleep(OUTPUT_GRACE) => {
                let _ = stop_tx.send(true);
                (&mut pumps).await;
            }
        }
    }
    let status = status.map_err(|e| {
        AgentError::new(
            Exit::Unavailable,
            format!("lost track of the build command: {e}"),
        )
    })?;
    Ok(exit_code(status))
}

/// Waits for the first of several futures.
async fn futures_select_all<F: std::future::Future + Unpin>(
    futures: impl IntoIterator<Item = F>,
) -> F::Output {
    let mut futures: Vec<F> = futures.into_iter().collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Copies one output of the command to the agent's, masked, until it ends or `stop` is set.
/// When the agent's output is gone, the command's output is still read (and dropped), so the
/// command never blocks on a full pipe.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    masker: &Masker,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stream = masker.stream();
    // What is read may hold a value.
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut out = Vec::with_capacity(2 * CHUNK);
    let mut writable = true;
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf[..]) => r.unwrap_or(0),
            _ = stop.wait_for(|s| *s) => 0,
        };
        if n == 0 {
            break;
        }
        out.clear();
        stream.push(&buf[..n], &mut out);
        if writable && (to.write_all(&out).await.is_err() || to.flush().await.is_err()) {
            writable = false;
        }
    }
    out.clear();
    stream.finish(&mut out);
    if writable {
        let _ = to.write_all(&out).await;
        let _ = to.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn placeholders_are_found_and_replaced() {
        assert_eq!(
            placeholders(b"id=hf,src={secret:hf}"),
            vec![b"secret:hf".as_slice()]
        );
        assert_eq!(
            placeholders(b"{x}{requirements}{"),
            vec![b"requirements".as_slice()]
        );
        let out = substitute(
            OsStr::new("-r{requirements} src={secret:hf},{secret:hf}"),
            Some(7),
            &[("hf".into(), 9)],
        );
        assert_eq!(out, "-r/dev/fd/7 src=/dev/fd/9,/dev/fd/9");
    }

    #[test]
    fn every_placeholder_needs_its_source_and_every_source_its_placeholder() {
        let hf = parse_secret_files(&["hf=HF_TOKEN".into()]).unwrap();
        assert!(check_placeholders(&os(&["pip", "-r", "{requirements}"]), true, &[]).is_ok());
        let e = check_placeholders(&os(&["pip", "install"]), true, &[]).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("{requirements}"));
        let e = check_placeholders(&os(&["pip", "-r", "{requirements}"]), false, &[]).unwrap_err();
        assert!(e.message.contains("--requirements"));
        let e = check_placeholders(&os(&["docker"]), false, &hf).unwrap_err();
        assert!(e.message.contains("{secret:hf}"), "{}", e.message);
        let e = check_placeholders(&os(&["docker", "{secret:other}"]), false, &hf).unwrap_err();
        assert!(
            e.message.contains("--secret-file other=NAME"),
            "{}",
            e.message
        );
        assert!(check_placeholders(&os(&["d", "src={secret:hf}"]), false, &hf).is_ok());
    }

    #[test]
    fn secret_file_arguments_are_checked() {
        assert_eq!(
            parse_secret_files(&["a.b-c_d=X_1".into()]).unwrap(),
            vec![SecretFile {
                id: "a.b-c_d".into(),
                name: "X_1".into()
            }]
        );
        for bad in ["novalue", "=X", "a b=X", "id=1X", "id=A-B"] {
            let e = parse_secret_files(&[bad.into()]).unwrap_err();
            assert_eq!(e.exit, Exit::Usage, "{bad}");
        }
        let e = parse_secret_files(&["a=X".into(), "a=Y".into()]).unwrap_err();
        assert!(e.message.contains("twice"));
    }

    #[test]
    fn memfds_are_sealed_and_hold_exactly_the_content() {
        use std::io::{Read, Seek};
        let fd = sealed_memfd("test", b"content").unwrap();
        let mut f = File::from(fd);
        assert!(
            f.write_all(b"more").is_err(),
            "a sealed memfd refuses writes"
        );
        assert!(f.set_len(0).is_err(), "a sealed memfd refuses shrinking");
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "content");
    }

    #[test]
    fn signal_deaths_read_like_a_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
