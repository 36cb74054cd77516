//! `runseal-agent`: the entrypoint of every runner. It fetches its environment's snapshot in
//! one gRPC call, builds the app's environment as a value, zeroizes everything else and
//! `execve`s the app, which takes over its PID, signals and exit status.
//!
//! Order matters: the agent makes itself non-dumpable and locks its memory before it touches
//! the credential; it fails closed (the app never starts without its snapshot); and on every
//! path that does not end in `execve`, all plaintext is dropped (zeroized) before it exits.
//! It logs names, never values or credentials.

pub mod build_step;
pub mod mask;

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use tonic::Code;
use zeroize::Zeroizing;

use crate::auth::Credential;
use crate::client::{connect_channel, Client, ClientError, Snapshot};
use crate::exec;

/// How long one try may take when `RUNSEAL_ADDR` lists several replicas.
const PER_TRY_WITH_REPLICAS: Duration = Duration::from_secs(4);

/// Exit statuses when the app cannot be exec'd (sysexits.h, and the shell's 126/127).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Usage = 64,
    NotSet = 65,
    NoInput = 66,
    Unavailable = 69,
    Refused = 77,
    Config = 78,
    NotExecutable = 126,
    NotFound = 127,
}

/// A failure before exec: its exit status and the one line printed on stderr.
#[derive(Debug)]
pub struct AgentError {
    pub exit: Exit,
    pub message: String,
}

impl AgentError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn report(&self) -> ExitCode {
        eprintln!("runseal-agent: {}", self.message);
        ExitCode::from(self.exit as u8)
    }
}

/// How the agent reaches runseald and with which credential (shared by `runseal-agent` and
/// `runseal-agent build`).
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// runseald address(es), comma-separated, tried in random order.
    #[arg(long, env = "RUNSEAL_ADDR", default_value = crate::defaults::DEFAULT_ADDR, hide_env_values = true)]
    pub addr: String,
    /// File holding the runner token (else RUNSEAL_TOKEN, else $CREDENTIALS_DIRECTORY/runseal-token).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM CA to verify an https:// server.
    #[arg(long, env = "RUNSEAL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The environment; must match the credential's.
    #[arg(long = "env", env = "RUNSEAL_ENV")]
    pub environment: Option<String>,
    /// Give up (exit 69) when no server answered within this time: 500ms, 30s, 1m.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse)]
    pub deadline: Duration,
}

#[derive(Debug, Parser)]
#[command(
    name = "runseal-agent",
    version,
    about = "Fetch this runner's secrets and exec the app with them",
    override_usage = "runseal-agent [OPTIONS] -- COMMAND [ARGS]...\n       runseal-agent build [OPTIONS] -- COMMAND [ARGS]...  (see runseal-agent build --help)"
)]
pub struct Args {
    #[command(flatten)]
    pub conn: Connection,
    /// This runner's id (else generated).
    #[arg(long, env = "RUNSEAL_RUNNER_ID")]
    pub runner_id: Option<String>,
    /// The app's allow-list: only these secrets (each must be set).
    #[arg(long, env = "RUNSEAL_SECRETS", value_delimiter = ',')]
    pub only: Vec<String>,
    /// The app and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Parses the command line; usage errors are exit 64, `--help`/`--version` exit 0.
pub fn parse_args() -> Result<Args, ExitCode> {
    parse_args_from(std::env::args_os())
}

/// [`parse_args`] from an explicit argv (its first item is the program name).
pub fn parse_args_from(
    argv: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<Args, ExitCode> {
    Args::try_parse_from(argv)
        .map_err(|e| usage_error(&e, "runseal-agent [OPTIONS] -- COMMAND [ARGS]..."))
}

/// Prints a clap error as the agent's one line (exit 64), or help/version (exit 0).
pub(crate) fn usage_error(e: &clap::Error, usage: &str) -> ExitCode {
    use clap::error::ErrorKind::*;
    match e.kind() {
        DisplayHelp | DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            // clap's message is several lines; the agent prints one.
            let text = e.to_string();
            let what: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let mut what = what.join(" ");
            // Never echo an argument that could be a credential (a token typed where a value
            // belongs): clap quotes unexpected arguments.
            for arg in std::env::args().skip(1) {
                if Credential::parse(&arg).is_ok() {
                    what = what.replace(&arg, "<redacted>");
                }
            }
            let what = what.trim_start_matches("error: ");
            // `runseal-agent env`: the app was given without the `--` in front of it. The
            // argument is shown only when it cannot be a credential.
            let hint = match (e.kind(), e.get(clap::error::ContextKind::InvalidArg)) {
                (UnknownArgument, Some(clap::error::ContextValue::String(arg)))
                    if !arg.starts_with('-') =>
                {
                    let arg = if Credential::parse(arg).is_ok() {
                        "COMMAND"
                    } else {
                        arg.as_str()
                    };
                    format!("\nhint: the app goes after `--`: runseal-agent [OPTIONS] -- {arg} [ARGS]...")
                }
                _ => String::new(),
            };
            AgentError::new(Exit::Usage, format!("{what} (usage: {usage}){hint}")).report()
        }
    }
}

/// Where the credential was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    File,
    Environment,
    SystemdCredential,
}

/// Reads the credential: `--token-file`, else `RUNSEAL_TOKEN`, else the systemd credential.
pub(crate) fn load_credential(
    args: &Connection,
) -> Result<(Credential, CredentialSource), AgentError> {
    let from_file = |path: &PathBuf, source: CredentialSource| read_token_file(path, source);
    let (text, source) = if let Some(path) = &args.token_file {
        (
            from_file(path, CredentialSource::File)?,
            CredentialSource::File,
        )
    } else if let Some(v) = std::env::var_os("RUNSEAL_TOKEN") {
        (
            Zeroizing::new(
                v.into_string().map_err(|_| {
                    AgentError::new(Exit::Config, "RUNSEAL_TOKEN is not valid UTF-8")
                })?,
            ),
            CredentialSource::Environment,
        )
    } else if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        (
            from_file(
                &PathBuf::from(dir).join("runseal-token"),
                CredentialSource::SystemdCredential,
            )?,
            CredentialSource::SystemdCredential,
        )
    } else {
        return Err(AgentError::new(
            Exit::Config,
            "no credential: set RUNSEAL_TOKEN, pass --token-file, or provide the systemd credential runseal-token",
        ));
    };
    let cred = Credential::parse(&text).map_err(|_| {
        AgentError::new(
            Exit::Config,
            "the credential is malformed: expected TOKEN_ID:TOKEN_SECRET",
        )
    })?;
    Ok((cred, source))
}

/// The most a token file may hold: one line of a credential, with room to spare.
pub const MAX_TOKEN_FILE: u64 = 4096;

/// Reads a token file: a regular file of at most [`MAX_TOKEN_FILE`] bytes. Warns (one line) when
/// others than its owner may read it. A `--token-file` that cannot be opened is not echoed: it
/// may be the token itself, passed where its file belongs.
fn read_token_file(
    path: &PathBuf,
    source: CredentialSource,
) -> Result<Zeroizing<String>, AgentError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = match source {
        CredentialSource::File => "the file given to --token-file".to_string(),
        _ => format!("the token file {}", path.display()),
    };
    // O_NONBLOCK: opening a FIFO must not hang the agent before it can refuse it.
    let mut file =
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| {
                AgentError::new(
            Exit::Config,
            format!("cannot read {shown}: {e} (it must name a file holding TOKEN_ID:TOKEN_SECRET)"),
        )
            })?;
    let meta = file
        .metadata()
        .map_err(|e| AgentError::new(Exit::Config, format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(AgentError::new(
            Exit::Config,
            format!("{shown} is not a regular file: give a file holding TOKEN_ID:TOKEN_SECRET"),
        ));
    }
    if meta.len() > MAX_TOKEN_FILE {
        return Err(AgentError::new(
            Exit::Config,
            format!(
                "{shown} is {} bytes: a token file holds one TOKEN_ID:TOKEN_SECRET line of at most {MAX_TOKEN_FILE} bytes",
                meta.len()
            ),
        ));
    }
    if let Some(w) = crate::file_mode::credential_file_warning(path, "token file") {
        eprintln!("runseal-agent: {w}");
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_FILE as usize + 1));
    file.by_ref()
        .take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AgentError::new(Exit::Config, format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(AgentError::new(
            Exit::Config,
            format!("{shown} is larger than {MAX_TOKEN_FILE} bytes"),
        ));
    }
    match std::str::from_utf8(&bytes) {
        Ok(t) => Ok(Zeroizing::new(t.to_string())),
        Err(_) => Err(AgentError::new(
            Exit::Config,
            format!("{shown} is not valid UTF-8"),
        )),
    }
}

/// Fetches the snapshot (see [`call`]). Every try carries this start's random retry key, so a
/// try whose answer was lost after the token was taken can be answered again, to this agent only.
async fn fetch(args: &Args, cred: &Credential, runner_id: &str) -> Result<Snapshot, AgentError> {
    let env = args.conn.environment.clone().unwrap_or_default();
    let mut retry_key = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(&mut retry_key[..]);
    let retry_key = &retry_key;
    call(&args.conn, cred, "the snapshot", |client| {
        let env = env.clone();
        async move {
            client
                .runners()
                .snapshot_with_retry_key(&env, runner_id, &args.only, &retry_key[..])
                .await
        }
    })
    .await
}

/// Makes one call to runseald, retrying connection failures and UNAVAILABLE with exponential
/// backoff and full jitter until the deadline. A refused credential is never retried. `what`
/// names the answer in messages ("the snapshot").
pub(crate) async fn call<T, F, Fut>(
    args: &Connection,
    cred: &Credential,
    what: &str,
    mut call: F,
) -> Result<T, AgentError>
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let started = Instant::now();
    let deadline = started + args.deadline;
    let mut addrs: Vec<&str> = args
        .addr
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        return Err(AgentError::new(
            Exit::Config,
            "no server address: set RUNSEAL_ADDR or --addr",
        ));
    }
    addrs.shuffle(&mut rand::thread_rng());
    let mut backoff = Duration::from_millis(25);
    let mut last_error = String::from("no attempt finished");
    let mut attempt = 0usize;
    loop {
        let addr = addrs[attempt % addrs.len()];
        attempt += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        // With several replicas, one that hangs (partitioned, stopped) must not take the whole
        // deadline: each try gets a few seconds, then the next address is tried.
        let per_try = if addrs.len() > 1 {
            remaining.min(PER_TRY_WITH_REPLICAS)
        } else {
            remaining
        };
        let result = tokio::time::timeout(per_try, async {
            let channel = connect_channel(addr, args.ca_cert.as_ref(), None, per_try).await?;
            call(Client::from_channel(channel, cred, addr)).await
        })
        .await;
        last_error = match result {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => refusal(e, addr, what, attempt < addrs.len())?,
            Err(_) => format!("{addr}: no answer within {per_try:?}"),
        };
        // Full jitter: sleep a random time up to the current backoff, within the deadline.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let sleep = rand::thread_rng()
            .gen_range(Duration::ZERO..=backoff)
            .min(remaining);
        tracing::debug!(attempt, ?sleep, error = %last_error, "call to runseald failed; retrying");
        tokio::time::sleep(sleep).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    Err(AgentError::new(
        Exit::Unavailable,
        format!(
            "no server answered within the deadline of {:?} (last error: {last_error})",
            args.deadline
        ),
    ))
}

/// What one failed try means: an error to give up with, or (`Ok`) the text of a failure worth
/// another try. `others_left`: some address has not been tried yet.
fn refusal(
    e: ClientError,
    addr: &str,
    what: &str,
    others_left: bool,
) -> Result<String, AgentError> {
    let s = match e {
        ClientError::InvalidAddress(a) => {
            return Err(AgentError::new(
                Exit::Config,
                format!(
                    "invalid address {a:?}: use http://HOST:PORT, https://HOST:PORT or unix:/path"
                ),
            ))
        }
        ClientError::Tls(e) => return Err(AgentError::new(Exit::Config, e)),
        ClientError::Status(s) => s,
        e => return Ok(e.to_string()),
    };
    let give_up = |exit, message: String| Err(AgentError::new(exit, message));
    match s.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Unknown => Ok(format!("{addr}: {}", s.message())),
        Code::Unauthenticated | Code::PermissionDenied => give_up(
            Exit::Refused,
            format!("credential refused by {addr}: {}", s.message()),
        ),
        Code::NotFound => give_up(
            Exit::Refused,
            format!("cannot fetch {what} from {addr}: {}", s.message()),
        ),
        Code::FailedPrecondition => give_up(Exit::NotSet, s.message().to_string()),
        Code::InvalidArgument => give_up(Exit::Config, s.message().to_string()),
        // A replica in trouble (INTERNAL, DATA_LOSS…): the others may be fine, so each address
        // gets its chance before the agent gives up.
        _ if others_left => Ok(format!("{addr} could not serve {what}: {}", s.message())),
        _ => give_up(
            Exit::Unavailable,
            format!("{addr} could not serve {what}: {}", s.message()),
        ),
    }
}

/// Checks the command before any token is spent on it ([`crate::exec::check_command`]).
pub(crate) fn check_command(command: &OsString) -> Result<(), AgentError> {
    Ok(exec::check_command(command)?)
}

impl From<exec::ExecError> for AgentError {
    fn from(e: exec::ExecError) -> Self {
        let exit = match e {
            exec::ExecError::Nul(_) => Exit::Usage,
            exec::ExecError::NotFound(_) => Exit::NotFound,
            exec::ExecError::NotExecutable(_) => Exit::NotExecutable,
        };
        AgentError::new(exit, e.to_string())
    }
}

/// Everything up to `execve`. Returns only on failure; the caller exits with its status.
pub fn run(args: Args) -> AgentError {
    if let Err(e) = exec::sys::make_non_dumpable() {
        return AgentError::new(
            Exit::Config,
            format!("cannot make the agent non-dumpable: {e}"),
        );
    }
    let locked = exec::sys::lock_memory();
    tracing::debug!(locked, "memory locking");

    let argv = match exec::Argv::new(&args.command) {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    let runner_id = match &args.runner_id {
        Some(id) => id.clone(),
        None => crate::defaults::generate_runner_id(),
    };

    // A command that cannot run must not use up a single-use token.
    if let Err(f) = check_command(&args.command[0]) {
        return f;
    }
    let cred = match load_credential(&args.conn) {
        Ok((c, _)) => c,
        Err(f) => return f,
    };
    // One thread, and only the drivers a fetch uses (sockets and timers): no signal driver.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => return AgentError::new(Exit::Config, format!("cannot start the runtime: {e}")),
    };
    let snapshot = runtime.block_on(fetch(&args, &cred, &runner_id));
    // Connections and their buffers go before exec; the credential is no longer needed.
    drop(runtime);
    drop(cred);
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(f) => return f,
    };

    let platform = exec::Platform {
        environment: snapshot.environment.clone(),
        revision: snapshot.revision,
        runner_id: snapshot.runner_id.clone(),
    };
    let child = exec::env::build(std::env::vars_os(), &snapshot.secrets, &platform);
    let count = snapshot.secrets.len();
    drop(snapshot);
    for name in &child.overridden {
        tracing::debug!(name, "a secret overrides an inherited variable");
    }
    tracing::debug!(
        environment = %platform.environment,
        revision = platform.revision,
        runner_id = %platform.runner_id,
        secrets = count,
        "exec"
    );
    exec::exec(&argv, child).into()
}
