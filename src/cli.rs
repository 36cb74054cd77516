//! `runseal`: the command line people, CI pipelines and orchestrators use. Every command is a
//! thin layer over [`crate::client`]; output is a table or JSON, and never holds a value.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::Credential;
use crate::client::{Client, ClientError, ConnectOptions};
use crate::secret::SecretBytes;
use crate::time_fmt::rfc3339;
use crate::MAIN_ENV;

pub use crate::defaults::DEFAULT_ADDR;

mod lifecycle;

#[derive(Debug, Parser)]
#[command(
    name = "runseal",
    version,
    about = "Manage runseal secrets, environments and keys"
)]
pub struct Cli {
    /// runseald address: http://HOST:PORT, https://HOST:PORT or unix:/path.
    #[arg(long, global = true, env = "RUNSEAL_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// File holding KEY_ID:KEY_SECRET (else RUNSEAL_KEY).
    #[arg(long, global = true)]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate to verify an https:// server (else the system roots).
    #[arg(long, global = true, env = "RUNSEAL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (with --client-key).
    #[arg(long, global = true, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM client key (with --client-cert).
    #[arg(long, global = true, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set, list and unset secrets.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// List, create and delete environments.
    #[command(subcommand, name = "env", alias = "environments")]
    Env(EnvCmd),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Mint and revoke runner tokens (for orchestrators).
    #[command(subcommand, name = "runner-token")]
    RunnerToken(RunnerTokenCmd),
    /// Runner starts and the revision each got.
    #[command(subcommand)]
    Runners(RunnersCmd),
    /// Show the audit log (newest first).
    Audit(AuditArgs),
    /// Build-time helpers (no server needed).
    #[command(subcommand)]
    Build(BuildCmd),
    /// Print one line per change of the watched environments, as it happens (never values).
    Watch(lifecycle::WatchArgs),
    /// Show the id, label and scopes of the key this command runs with (never its secret).
    Whoami {
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    /// Run a command with an environment's secrets as its environment variables, for local
    /// development: fetches the snapshot with this CLI's key (scope snapshot:ENV) and execs
    /// COMMAND, which takes over this process (its exit status is the command's).
    Run(RunArgs),
    /// Print shell completions.
    Completions {
        /// The shell to print completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The environment whose secrets the command gets.
    #[arg(long, default_value = MAIN_ENV)]
    pub env: String,
    /// Only these secrets: NAME,NAME… (each must be set).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// A table for people.
    #[default]
    Pretty,
    /// JSON for programs.
    Json,
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Set one or more secrets atomically: NAME=VALUE, or NAME=- to type the value at a hidden
    /// prompt (on a terminal) or read it from stdin.
    Set {
        /// NAME=VALUE, or NAME=- (prompt on a terminal, else stdin).
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<OsString>,
        /// The environment to set them in.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Runners without an allow-list get these secrets.
        #[arg(long, conflicts_with = "not_exposed_by_default")]
        exposed_by_default: bool,
        /// Only runners whose allow-list names these secrets get them.
        #[arg(long)]
        not_exposed_by_default: bool,
    },
    /// List secret names with their environment, exposure and times (never values).
    List {
        /// The environment to list.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    /// Set every NAME=VALUE of a dotenv file (or `-`: stdin) as one atomic batch. `$` is always
    /// literal (no variable substitution); errors name FILE:LINE and the rule, never the text.
    Import {
        /// The dotenv file, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        /// The environment to set them in.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Runners without an allow-list get these secrets.
        #[arg(long, conflicts_with = "not_exposed_by_default")]
        exposed_by_default: bool,
        /// Only runners whose allow-list names these secrets get them.
        #[arg(long)]
        not_exposed_by_default: bool,
    },
    /// Remove one or more secrets in one change: a name that is not set fails the whole
    /// command, and nothing is removed.
    Unset {
        /// The secrets to remove.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// The environment to remove them from.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
    },
    /// Change whether a secret goes to runners without an allow-list, keeping its value.
    #[command(group(clap::ArgGroup::new("exposure").required(true).multiple(false)))]
    Expose {
        /// The secret.
        name: String,
        /// Runners without an allow-list get it.
        #[arg(long, group = "exposure")]
        on: bool,
        /// Only runners whose allow-list names it get it.
        #[arg(long, group = "exposure")]
        off: bool,
        /// Back to the server's default (runseald's `expose_by_default`).
        #[arg(long, group = "exposure")]
        default: bool,
        /// The secret's environment.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
    },
    /// List the kept versions of a secret: number, time, key, current (never values).
    History(lifecycle::HistoryArgs),
    /// Make a kept version current again (as a new version); sets an unset secret again.
    Rollback(lifecycle::RollbackArgs),
    /// Destroy a secret's kept versions for good: one (--version N), or all and its value.
    Purge(lifecycle::PurgeArgs),
    /// Copy secrets from one environment to another on the server (values never leave it).
    Copy(lifecycle::CopyArgs),
}

/// `NAME=VALUE` pairs hold values: `Debug` shows how many there are, never what they are.
impl std::fmt::Debug for SecretsCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretsCmd::Set {
                pairs,
                env,
                exposed_by_default,
                not_exposed_by_default,
            } => f
                .debug_struct("Set")
                .field("pairs", &format_args!("<{} redacted>", pairs.len()))
                .field("env", env)
                .field("exposed_by_default", exposed_by_default)
                .field("not_exposed_by_default", not_exposed_by_default)
                .finish(),
            SecretsCmd::List { env, output } => f
                .debug_struct("List")
                .field("env", env)
                .field("output", output)
                .finish(),
            SecretsCmd::Import { file, env, .. } => f
                .debug_struct("Import")
                .field("file", file)
                .field("env", env)
                .finish(),
            SecretsCmd::Unset { names, env } => f
                .debug_struct("Unset")
                .field("names", names)
                .field("env", env)
                .finish(),
            SecretsCmd::Expose {
                name,
                on,
                off,
                default,
                env,
            } => f
                .debug_struct("Expose")
                .field("name", name)
                .field("on", on)
                .field("off", off)
                .field("default", default)
                .field("env", env)
                .finish(),
            SecretsCmd::History(a) => a.fmt(f),
            SecretsCmd::Rollback(a) => a.fmt(f),
            SecretsCmd::Purge(a) => a.fmt(f),
            SecretsCmd::Copy(a) => a.fmt(f),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// List the environments this key may see, with their revision and secret count.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    /// Create an environment (admin).
    Create {
        /// Lowercase letters, digits and '-', at most 63 characters.
        name: String,
    },
    /// Delete an environment (refused while it holds secrets, unless --force). Its runner
    /// tokens and the key scopes that name it end with it.
    Delete {
        /// The environment (not `main`).
        name: String,
        /// Also delete the secrets it holds.
        #[arg(long)]
        force: bool,
    },
    /// Compare two environments: names only in one, in both, and (with snapshot: on both)
    /// whether their values are equal, computed on the server.
    Diff(lifecycle::DiffArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; prints KEY_ID:KEY_SECRET once.
    Create {
        /// admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV or build:ENV (repeatable, or
        /// comma-separated as `keys list` prints them); ENV must exist.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A note shown in `keys list` (at most 200 characters).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List every key: id, label, scopes, times, state (never secrets).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    /// Revoke a key, with the runner tokens it minted and its dashboard sessions.
    Revoke {
        /// The key's id (rk_…).
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnerTokenCmd {
    /// Mint runner tokens; prints one TOKEN_ID:TOKEN_SECRET per line.
    Issue {
        /// The environment the runners start in.
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Lifetime, e.g. 30s, 10m, 1h.
        #[arg(long, default_value = "10m", value_parser = crate::duration::parse)]
        ttl: std::time::Duration,
        /// Snapshots each token may fetch.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// The allow-list of the runners: NAME,NAME…
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// How many tokens (one per runner), 1 to 10000.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        count: u32,
        /// run, or build (for `runseal-agent build`).
        #[arg(long, default_value = "run")]
        purpose: String,
    },
    /// Revoke one token by id, or every active token of an environment with --env ENV --all.
    Revoke {
        /// The token's id (rt_…).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        token_id: Option<String>,
        /// Every active token of the environment given with --env.
        #[arg(long, requires = "env")]
        all: bool,
        /// The environment, with --all.
        #[arg(long)]
        env: Option<String>,
    },
    /// Active tokens (unrevoked, unexpired, uses left): ids, environment, uses left, expiry,
    /// minted by. Never secrets.
    List {
        /// One environment (scope read:ENV or issue:ENV); without it, every one (admin).
        #[arg(long)]
        env: Option<String>,
        /// At most this many tokens.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum BuildCmd {
    /// Print the cache key of a build step: SHA-256 over the requirements templates and the
    /// names they reference, never values, so it is the same in every environment.
    CacheKey {
        /// A requirements template, as given to `runseal-agent build` (repeatable, in order).
        #[arg(
            long = "requirements",
            value_name = "FILE",
            required_unless_present = "requirement"
        )]
        requirements: Vec<PathBuf>,
        /// One requirements line, as given to `runseal-agent build` (repeatable; after the files).
        #[arg(long = "requirement", value_name = "LINE")]
        requirement: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnersCmd {
    /// Runner starts, newest first, with the revision each got and the current one.
    List {
        /// One environment (scope read:ENV); without it, every one (admin).
        #[arg(long)]
        env: Option<String>,
        /// Only stale runners: a change since their start touched a name they got or would get
        /// now (their allow-list; without one, what they got and every exposed secret).
        #[arg(long)]
        stale: bool,
        /// At most this many runners.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries about this environment (which must exist).
    #[arg(long)]
    pub env: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    pub output: Output,
}

/// Parses the command line like `Cli::parse`, but a usage error is one line, plus a hint
/// when the mistake is a common one, with exit status 2; and it never echoes an argument that
/// could be a credential (`KEY_ID:KEY_SECRET` typed where something else belongs): such
/// arguments are shown as `<redacted>`.
pub fn parse() -> Cli {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("{}", usage_error(&e, &argv));
            std::process::exit(e.exit_code());
        }
    }
}

/// A clap error as `runseal: WHAT` and a `hint:` line: the hint for a common mistake, else
/// clap's own tip, else where the help is.
pub fn usage_error(e: &clap::Error, argv: &[OsString]) -> String {
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| {
            let a = a.to_string_lossy();
            if Credential::parse(&a).is_ok() {
                "<redacted>".to_string()
            } else {
                a.into_owned()
            }
        })
        .collect();
    let mut text = e.render().to_string();
    for arg in argv.iter().skip(1).filter_map(|a| a.to_str()) {
        if Credential::parse(arg).is_ok() {
            text = text.replace(arg, "<redacted>");
        }
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The error line and the lines that continue it (the arguments a command still needs).
    let what: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("error:"))
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("tip:"))
        .map(|l| l.trim_start_matches("error:").trim())
        .collect();
    let what = if what.is_empty() {
        "invalid usage".to_string()
    } else {
        what.join(" ")
    };
    let tip = lines
        .iter()
        .find(|l| l.starts_with("tip:"))
        .map(|l| l.trim_start_matches("tip:").trim().to_string());
    let hint = usage_hint(e, &args).or(tip).unwrap_or_else(|| {
        // The deepest command the words name.
        let mut path = String::new();
        let mut cmd = Cli::command();
        for word in args.iter().filter(|a| !a.starts_with('-')) {
            let Some(sub) = cmd.find_subcommand(word).cloned() else {
                break;
            };
            path.push(' ');
            path.push_str(sub.get_name());
            cmd = sub;
        }
        format!("see `runseal{path} --help`")
    });
    format!("runseal: {what}\nhint: {hint}")
}

/// The hint for a usage mistake people make often.
fn usage_hint(e: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::ErrorKind;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let env_at = words
        .iter()
        .position(|a| *a == "--env" || a.starts_with("--env="));
    // `runseal --env x secrets list`: --env is an option of each command, not a global one.
    if let (ErrorKind::UnknownArgument, Some(i)) = (e.kind(), env_at) {
        let first_command = words.iter().position(|a| !a.starts_with('-'));
        if first_command.is_none_or(|c| c > i) {
            let mut moved: Vec<&str> = words.clone();
            let taken = if words[i] == "--env" && i + 1 < words.len() {
                moved.drain(i..i + 2).collect::<Vec<_>>()
            } else {
                moved.drain(i..i + 1).collect::<Vec<_>>()
            };
            moved.extend(taken);
            return Some(format!(
                "--env goes after the command: `runseal {}`",
                moved.join(" ")
            ));
        }
    }
    // `runseal run sh -c …`: the command goes after `--`.
    if let (ErrorKind::UnknownArgument, Some(clap::error::ContextValue::String(arg))) =
        (e.kind(), e.get(clap::error::ContextKind::InvalidArg))
    {
        if words.first() == Some(&"run") && !arg.starts_with('-') {
            let arg = if Credential::parse(arg).is_ok() {
                "<redacted>"
            } else {
                arg.as_str()
            };
            return Some(format!(
                "the command goes after `--`: `runseal run [--env ENV] -- {arg} …`"
            ));
        }
    }
    if e.kind() == ErrorKind::InvalidSubcommand
        && words.first() == Some(&"secrets")
        && matches!(
            words.get(1),
            Some(&"get") | Some(&"show") | Some(&"read") | Some(&"reveal") | Some(&"value")
        )
    {
        return Some(
            "values are write-only: no command reads one back. `runseal run [--env ENV] -- COMMAND` \
             runs a command with them (scope snapshot:ENV), as runseal-agent does for runners"
                .into(),
        );
    }
    None
}

/// A user-facing failure: one line, already worded, and the exit status it ends with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    message: String,
    code: u8,
    /// The server's answer, when it refused.
    status: Option<(tonic::Code, String)>,
}

impl CliError {
    /// The exit status: 1, or the shell's 126/127 when `runseal run` cannot exec its command.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let status = match &e {
            ClientError::Status(s) => Some((s.code(), s.message().to_string())),
            _ => None,
        };
        CliError {
            message: e.to_string(),
            code: 1,
            status,
        }
    }
}

fn fail(msg: impl Into<String>) -> CliError {
    CliError {
        message: msg.into(),
        code: 1,
        status: None,
    }
}

/// The whole `runseal` program. Errors are one line, printed by `main` as `runseal: …`.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        // Rendered in memory and written at once: a reader that stops early (`| head`) closes
        // the pipe, which is not an error (clap_complete would panic on it).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "runseal", &mut script);
        return match std::io::stdout().lock().write_all(&script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(io(e)),
            _ => Ok(()),
        };
    }
    if let Command::Build(BuildCmd::CacheKey {
        requirements,
        requirement,
    }) = &cli.command
    {
        let templates =
            crate::template::load(requirements, requirement).map_err(|e| fail(e.to_string()))?;
        let key = crate::template::cache_key(&templates);
        return writeln!(std::io::stdout().lock(), "{key}").map_err(io);
    }
    let key = load_key(cli.key_file.as_ref())?;
    let mut opts = ConnectOptions::new(cli.addr.clone(), key);
    opts.ca_cert = cli.ca_cert.clone();
    opts.client_identity = cli.client_cert.clone().zip(cli.client_key.clone());
    let client = Client::connect_with(opts).await?;
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Secrets(cmd) => secrets(&client, cmd, &mut out).await,
        Command::Env(cmd) => envs(&client, cmd, &mut out).await,
        Command::Keys(cmd) => keys(&client, cmd, &mut out).await,
        Command::RunnerToken(cmd) => runner_tokens(&client, cmd, &mut out).await,
        Command::Runners(cmd) => runners(&client, cmd, &mut out).await,
        Command::Audit(args) => audit(&client, args, &mut out).await,
        Command::Watch(args) => lifecycle::watch(&client, args, &mut out).await,
        Command::Whoami { output } => whoami(&client, output, &mut out).await,
        Command::Run(args) => run_command(&client, args).await,
        Command::Completions { .. } | Command::Build(_) => unreachable!("handled above"),
    };
    match result {
        Err(e) if crate::client::is_protocol_mismatch(&e.message) => {
            let why = if cli.addr.starts_with("unix:") || cli.addr.starts_with("https://") {
                "the server there does not speak gRPC: check that it is runseald".to_string()
            } else {
                crate::client::diagnose_plaintext(&cli.addr).await
            };
            Err(fail(format!(
                "cannot talk to runseald at {}: {} ({why})",
                cli.addr, e.message
            )))
        }
        Err(e) => Err(suggest_environment(&client, e).await),
        r => r,
    }
}

/// The environment an error is about, when the server said it does not exist or that the key
/// lacks a scope of it.
fn environment_in(status: &(tonic::Code, String)) -> Option<&str> {
    let (code, message) = status;
    match code {
        tonic::Code::NotFound => message
            .strip_prefix("environment \"")?
            .split_once("\" does not exist")
            .map(|(env, _)| env),
        tonic::Code::PermissionDenied => message
            .split_once(" lacks the scope ")?
            .1
            .split_once(':')
            .map(|(_, env)| env.trim()),
        _ => None,
    }
}

/// The closest name to `wanted` among `known`, if it is close enough to be a typo.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter(|k| *k != wanted)
        .map(|k| (strsim::damerau_levenshtein(wanted, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Adds "did you mean …?" to an error about an environment that does not exist (or that the key
/// has no scope of), naming only environments this key may see (the server lists no other).
async fn suggest_environment(client: &Client, mut e: CliError) -> CliError {
    let Some(env) = e
        .status
        .as_ref()
        .and_then(environment_in)
        .map(str::to_string)
    else {
        return e;
    };
    let Ok(known) = client.environments().list().await else {
        return e;
    };
    if known.iter().any(|k| k.name == env) {
        return e;
    }
    let Some(near) = closest(&env, known.iter().map(|k| k.name.as_str())) else {
        return e;
    };
    let not_found = e
        .status
        .as_ref()
        .is_some_and(|s| s.0 == tonic::Code::NotFound);
    e.message = if not_found {
        format!(
            "not found: environment \"{env}\" does not exist; did you mean \"{near}\"? (to create it: `runseal env create {env}`)"
        )
    } else {
        format!("{} (did you mean environment \"{near}\"?)", e.message)
    };
    e
}

fn load_key(key_file: Option<&PathBuf>) -> Result<Credential, CliError> {
    let text = match key_file {
        Some(path) => {
            // The path is not echoed: `--key-file "$RUNSEAL_KEY"` passes the key where its file
            // belongs, and an error must never print a credential.
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                fail(format!(
                    "cannot read the file given to --key-file: {e} (it must name a file holding KEY_ID:KEY_SECRET, not the key itself)"
                ))
            })?);
            if let Some(w) = crate::file_mode::credential_file_warning(path, "key file") {
                eprintln!("runseal: {w}");
            }
            text
        }
        None => match std::env::var("RUNSEAL_KEY") {
            Ok(v) => Zeroizing::new(v),
            Err(_) => {
                return Err(fail(
                    "no key: set RUNSEAL_KEY=KEY_ID:KEY_SECRET or pass --key-file FILE \
                     (the first admin key is in <data-dir>/admin.key)",
                ))
            }
        },
    };
    Credential::parse(&text).map_err(|e| fail(format!("invalid key: {e}")))
}

/// Splits `NAME=VALUE` arguments; `NAME=-` takes the value from a hidden prompt when stdin is
/// a terminal (one prompt per name), else from stdin (once).
async fn parse_pairs(pairs: Vec<OsString>) -> Result<Vec<(String, SecretBytes)>, CliError> {
    use std::io::IsTerminal;
    let mut out = Vec::with_capacity(pairs.len());
    let mut stdin_used = false;
    let tty = std::io::stdin().is_terminal();
    for pair in pairs {
        let bytes = Zeroizing::new(pair.into_vec());
        let eq = bytes.iter().position(|b| *b == b'=').ok_or_else(|| {
            fail("expected NAME=VALUE (or NAME=- to read the value from stdin)".to_string())
        })?;
        let name = String::from_utf8(bytes[..eq].to_vec())
            .map_err(|_| fail("a secret name must be ASCII letters, digits and '_'"))?;
        let raw = &bytes[eq + 1..];
        let value = if raw == b"-" && tty {
            prompt_hidden(&name).await?
        } else if raw == b"-" {
            if stdin_used {
                return Err(fail(format!(
                    "{name}=-: only one value can be read from stdin per call"
                )));
            }
            stdin_used = true;
            read_stdin_value()?
        } else {
            SecretBytes::new(raw.to_vec())
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Asks for `name`'s value on the terminal with echo off, and reads one line (its newline
/// dropped). Ctrl-C restores the terminal and ends the command (exit 130).
async fn prompt_hidden(name: &str) -> Result<SecretBytes, CliError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let term_err = |e: nix::Error| fail(format!("cannot turn off echo on the terminal: {e}"));
    let saved = tcgetattr(std::io::stdin()).map_err(term_err)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    // Echo goes off before the prompt shows: nothing typed after it is ever echoed.
    tcsetattr(std::io::stdin(), SetArg::TCSAFLUSH, &quiet).map_err(term_err)?;
    eprint!("{name} (input hidden): ");
    let restore = || {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
    };
    let read = tokio::task::spawn_blocking(read_line_value);
    let value = tokio::select! {
        v = read => v.map_err(|_| fail("cannot read the value from the terminal")).and_then(|v| v),
        _ = tokio::signal::ctrl_c() => {
            restore();
            eprintln!();
            return Err(CliError { code: 130, ..fail("interrupted; nothing was set") });
        }
    };
    restore();
    let value = value?;
    if value.is_empty() {
        return Err(fail(format!("{name}: no value typed; nothing was set")));
    }
    Ok(value)
}

/// One line from stdin (a terminal in canonical mode: each read returns at most a line), in
/// zeroizing buffers only; the newline is dropped.
fn read_line_value() -> Result<SecretBytes, CliError> {
    read_secret(&mut std::io::stdin().lock(), true)
        .map(|mut b| SecretBytes::new(std::mem::take(&mut *b)))
        .map_err(|e| fail(format!("cannot read the value: {e}")))
}

/// The pairs of a dotenv file (`-`: stdin), read into zeroizing buffers only. Errors name the
/// file and the line, never the file's text.
fn import_file(path: &std::path::Path) -> Result<Vec<(String, SecretBytes)>, CliError> {
    let shown = path.display().to_string();
    let read = if shown == "-" {
        read_secret(&mut std::io::stdin().lock(), false)
    } else {
        std::fs::File::open(path).and_then(|mut f| read_secret(&mut f, false))
    };
    let bytes = read.map_err(|e| fail(format!("cannot read {shown}: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        fail(format!(
            "{shown}: not UTF-8 text (byte {})",
            e.valid_up_to()
        ))
    })?;
    let pairs = crate::dotenv::parse(text)
        .map_err(|e| fail(format!("{shown}:{}: {}; nothing was set", e.line, e.rule)))?;
    if pairs.is_empty() {
        return Err(fail(format!(
            "{shown}: no NAME=VALUE line; nothing was set"
        )));
    }
    Ok(pairs)
}

/// Reads stdin to the end; one trailing newline (from `echo` or a file) is dropped.
fn read_stdin_value() -> Result<SecretBytes, CliError> {
    read_secret(&mut std::io::stdin().lock(), false)
        .map(|mut b| SecretBytes::new(std::mem::take(&mut *b)))
        .map_err(|e| fail(format!("cannot read the value from stdin: {e}")))
}

/// Reads `r` to the end, or with `line` through the first newline, into zeroizing buffers only:
/// each outgrown one is wiped as it is replaced (`read_to_end` would leave copies behind). One
/// trailing newline (LF or CRLF) is dropped.
fn read_secret(r: &mut impl Read, line: bool) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(8192));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    while !(line && buf.ends_with(b"\n")) {
        let n = match r.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.len() + n > buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity((buf.len() + n) * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(buf)
}

fn io(e: std::io::Error) -> CliError {
    fail(format!("cannot write output: {e}"))
}

/// A plain-text table: header row and left-aligned columns separated by two spaces.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec())).map_err(io)?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect())).map_err(io)?;
    }
    Ok(())
}

fn print_json(out: &mut impl Write, v: serde_json::Value) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(&v).map_err(|e| fail(format!("cannot encode JSON: {e}")))?;
    writeln!(out, "{text}").map_err(io)
}

/// A listing as `--output` asks: JSON `{"KEY": [item, …]}` with `item` of each, or a table
/// under `header` with a `row` of each.
fn print_listing<T>(
    out: &mut impl Write,
    output: Output,
    key: &str,
    items: &[T],
    item: impl Fn(&T) -> serde_json::Value,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<(), CliError> {
    match output {
        Output::Json => print_json(
            out,
            json!({ key: items.iter().map(item).collect::<Vec<_>>() }),
        ),
        Output::Pretty => table(out, header, &items.iter().map(row).collect::<Vec<_>>()),
    }
}

/// Sets `pairs` as one batch (`secrets set`, `secrets import`) and says which names were set.
async fn set_batch(
    client: &Client,
    env: &str,
    pairs: Vec<(String, SecretBytes)>,
    exposed_by_default: bool,
    not_exposed_by_default: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let exposed = match (exposed_by_default, not_exposed_by_default) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let revision = client.secrets().set_many_with(env, pairs, exposed).await?;
    writeln!(
        out,
        "set {} in {env} (revision {revision})",
        names.join(", ")
    )
    .map_err(io)
}

/// `secrets list`: the names of an environment with their exposure, as a table or JSON.
async fn list_secrets(
    client: &Client,
    env: &str,
    output: Output,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let list = client.secrets().list(env).await?;
    // The setting of each secret, else "default" (the server's `expose_by_default`).
    let setting = |s: &crate::client::SecretInfo| match s.exposed_by_default {
        Some(true) => "on",
        Some(false) => "off",
        None => "default",
    };
    print_listing(
        out,
        output,
        "secrets",
        &list,
        |s| {
            json!({
                "name": s.name,
                "environment": s.environment,
                "created_at": rfc3339(s.created_at.as_ref()),
                "updated_at": rfc3339(s.updated_at.as_ref()),
                "exposed_by_default": s.exposed.or(s.exposed_by_default),
                "exposure": setting(s),
            })
        },
        &["Name", "Env", "Exposed", "Created At", "Updated At"],
        |s| {
            let exposed = match (s.exposed.or(s.exposed_by_default), setting(s)) {
                (Some(true), "default") => "yes (default)",
                (Some(false), "default") => "no (default)",
                (Some(true), _) => "yes",
                (Some(false), _) => "no",
                (None, _) => "default",
            };
            vec![
                s.name.clone(),
                s.environment.clone(),
                exposed.to_string(),
                rfc3339(s.created_at.as_ref()),
                rfc3339(s.updated_at.as_ref()),
            ]
        },
    )
}

async fn secrets(client: &Client, cmd: SecretsCmd, out: &mut impl Write) -> Result<(), CliError> {
    match cmd {
        SecretsCmd::Set {
            pairs,
            env,
            exposed_by_default,
            not_exposed_by_default,
        } => {
            let pairs = parse_pairs(pairs).await?;
            set_batch(
                client,
                &env,
                pairs,
                exposed_by_default,
                not_exposed_by_default,
                out,
            )
            .await
        }
        SecretsCmd::List { env, output } => list_secrets(client, &env, output, out).await,
        SecretsCmd::Import {
            file,
            env,
            exposed_by_default,
            not_exposed_by_default,
        } => {
            let pairs = import_file(&file)?;
            set_batch(
                client,
                &env,
                pairs,
                exposed_by_default,
                not_exposed_by_default,
                out,
            )
            .await
        }
        SecretsCmd::Unset { names, env } => {
            let revision = match names.as_slice() {
                // One name goes the way older servers understand too.
                [name] => client.secrets().unset(name, &env).await?,
                _ => client.secrets().unset_many(&env, &names).await?,
            };
            writeln!(
                out,
                "unset {} in {env} (revision {revision})",
                names.join(", ")
            )
            .map_err(io)
        }
        SecretsCmd::Expose {
            name, on, off, env, ..
        } => {
            let (exposed, shown) = match (on, off) {
                (true, _) => (Some(true), "exposed by default"),
                (_, true) => (Some(false), "not exposed by default"),
                _ => (None, "back to the server's default exposure"),
            };
            let revision = client.secrets().set_exposure(&env, &name, exposed).await?;
            writeln!(out, "{name} in {env} is {shown} (revision {revision})").map_err(io)
        }
        SecretsCmd::History(a) => lifecycle::history(client, a, out).await,
        SecretsCmd::Rollback(a) => lifecycle::rollback(client, a, out).await,
        SecretsCmd::Purge(a) => lifecycle::purge(client, a, out).await,
        SecretsCmd::Copy(a) => lifecycle::copy(client, a, out).await,
    }
}

async fn envs(client: &Client, cmd: EnvCmd, out: &mut impl Write) -> Result<(), CliError> {
    match cmd {
        EnvCmd::List { output } => {
            let list = client.environments().list().await?;
            print_listing(
                out,
                output,
                "environments",
                &list,
                |e| {
                    json!({
                        "name": e.name,
                        "revision": e.revision,
                        "secret_count": e.secret_count,
                        "created_at": rfc3339(e.created_at.as_ref()),
                    })
                },
                &["Name", "Secrets", "Revision", "Created At"],
                |e| {
                    vec![
                        e.name.clone(),
                        e.secret_count.to_string(),
                        e.revision.to_string(),
                        rfc3339(e.created_at.as_ref()),
                    ]
                },
            )
        }
        EnvCmd::Create { name } => {
            client.environments().create(&name).await?;
            writeln!(out, "created environment {name}").map_err(io)
        }
        EnvCmd::Delete { name, force } => {
            let n = client.environments().delete(&name, force).await?;
            writeln!(out, "deleted environment {name} ({n} secrets deleted)").map_err(io)
        }
        EnvCmd::Diff(a) => lifecycle::diff(client, a, out).await,
    }
}

async fn keys(client: &Client, cmd: KeysCmd, out: &mut impl Write) -> Result<(), CliError> {
    match cmd {
        KeysCmd::Create { scopes, label } => {
            let (info, cred) = client.keys().create(&scopes, &label).await?;
            eprintln!(
                "created key {} with scopes {}; the key is shown once:",
                info.key_id,
                info.scopes.join(",")
            );
            writeln!(out, "{}", cred.to_line().as_str()).map_err(io)
        }
        KeysCmd::List { output } => {
            let list = client.keys().list().await?;
            let state = |k: &crate::client::KeyInfo| {
                if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                }
            };
            print_listing(
                out,
                output,
                "keys",
                &list,
                |k| {
                    json!({
                        "key_id": k.key_id,
                        "label": k.label,
                        "scopes": k.scopes,
                        "created_at": rfc3339(k.created_at.as_ref()),
                        "last_used_at": k.last_used_at.as_ref().map(|t| rfc3339(Some(t))),
                        "revoked_at": k.revoked_at.as_ref().map(|t| rfc3339(Some(t))),
                    })
                },
                &[
                    "Key ID",
                    "Label",
                    "Scopes",
                    "Created At",
                    "Last Used",
                    "State",
                ],
                |k| {
                    vec![
                        k.key_id.clone(),
                        k.label.clone(),
                        k.scopes.join(","),
                        rfc3339(k.created_at.as_ref()),
                        k.last_used_at
                            .as_ref()
                            .map(|t| rfc3339(Some(t)))
                            .unwrap_or_else(|| "never".into()),
                        state(k).to_string(),
                    ]
                },
            )
        }
        KeysCmd::Revoke { key_id } => {
            let tokens = client.keys().revoke(&key_id).await?;
            writeln!(
                out,
                "revoked key {key_id} and the {tokens} active runner token(s) it minted"
            )
            .map_err(io)
        }
    }
}

async fn whoami(client: &Client, output: Output, out: &mut impl Write) -> Result<(), CliError> {
    let k = client.keys().who_am_i().await?;
    match output {
        Output::Json => print_json(
            out,
            json!({
                "key_id": k.key_id,
                "label": k.label,
                "scopes": k.scopes,
                "created_at": rfc3339(k.created_at.as_ref()),
            }),
        ),
        Output::Pretty => {
            let label = if k.label.is_empty() {
                "(none)"
            } else {
                &k.label
            };
            writeln!(
                out,
                "key     {}\nlabel   {label}\nscopes  {}",
                k.key_id,
                k.scopes.join(",")
            )
            .map_err(io)
        }
    }
}

/// `runseal run`: the environment's snapshot, fetched with this CLI's key, as the command's
/// environment, through the exec path the agent uses ([`crate::exec`]). Returns only on
/// failure.
async fn run_command(client: &Client, args: RunArgs) -> Result<(), CliError> {
    use crate::exec;
    let exec_failed = |e: exec::ExecError| {
        let code = match e {
            exec::ExecError::Nul(_) => 2,
            exec::ExecError::NotFound(_) => 127,
            exec::ExecError::NotExecutable(_) => 126,
        };
        CliError {
            code,
            ..fail(e.to_string())
        }
    };
    let argv = exec::Argv::new(&args.command).map_err(exec_failed)?;
    exec::check_command(&args.command[0]).map_err(exec_failed)?;
    // As the agent: no core dump or ptrace of this process while it holds the values (the
    // command, once exec'd, is dumpable again).
    exec::sys::make_non_dumpable()
        .map_err(|e| fail(format!("cannot make runseal non-dumpable: {e}")))?;
    let runner_id = crate::defaults::generate_runner_id();
    let snapshot = match client
        .runners()
        .snapshot(&args.env, &runner_id, &args.only)
        .await
    {
        Ok(s) => s,
        Err(e) if e.code() == Some(tonic::Code::PermissionDenied) => {
            let env = &args.env;
            let mut e = CliError::from(e);
            e.message = format!(
                "{}: `runseal run` fetches the values with your key, which needs the scope snapshot:{env} (admin does not imply it); create one with `runseal keys create --scope snapshot:{env}` and run with it",
                e.message
            );
            return Err(e);
        }
        Err(e) => return Err(e.into()),
    };
    let platform = exec::Platform {
        environment: snapshot.environment.clone(),
        revision: snapshot.revision,
        runner_id: snapshot.runner_id.clone(),
    };
    let child = exec::env::build(std::env::vars_os(), &snapshot.secrets, &platform);
    drop(snapshot);
    for name in &child.overridden {
        eprintln!("runseal: the secret {name} overrides the variable of that name");
    }
    Err(exec_failed(exec::exec(&argv, child)))
}

/// One audit entry as `runseal audit --output json` prints it; `via` only for a change that
/// came through the dashboard.
fn audit_json(e: &crate::client::AuditEntry) -> serde_json::Value {
    let mut entry = json!({
        "id": e.id,
        "at": rfc3339(e.at.as_ref()),
        "key_id": e.key_id,
        "action": e.action,
        "environment": e.environment,
        "names": e.names,
        "names_total": e.names_total,
        "revision": e.revision,
        "runner_id": (!e.runner_id.is_empty()).then_some(&e.runner_id),
        "value_count": e.value_count,
    });
    if !e.via.is_empty() {
        entry["via"] = json!(e.via);
    }
    entry
}

async fn audit(client: &Client, args: AuditArgs, out: &mut impl Write) -> Result<(), CliError> {
    let env = args.env.unwrap_or_default();
    let entries = client.audit().list(&env, args.limit).await?;
    print_listing(
        out,
        args.output,
        "entries",
        &entries,
        audit_json,
        &["At", "Key ID", "Action", "Env", "Rev", "Names / runner"],
        |e| {
            let mut what = e.names.join(",");
            if e.names_total > e.names.len() as u64 {
                what.push_str(&format!(",… ({} in all)", e.names_total));
            }
            if !e.runner_id.is_empty() {
                what = format!("{} ({} values)", e.runner_id, e.value_count.unwrap_or(0));
            }
            vec![
                rfc3339(e.at.as_ref()),
                e.key_id.clone(),
                if e.via.is_empty() {
                    e.action.clone()
                } else {
                    format!("{} ({})", e.action, e.via)
                },
                e.environment.clone(),
                e.revision.map(|r| r.to_string()).unwrap_or_default(),
                what,
            ]
        },
    )
}

async fn runner_tokens(
    client: &Client,
    cmd: RunnerTokenCmd,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match cmd {
        RunnerTokenCmd::Issue {
            env,
            ttl,
            uses,
            only,
            count,
            purpose,
        } => {
            let opts = crate::client::IssueOptions {
                count,
                ttl: Some(ttl),
                uses,
                only,
                purpose,
            };
            let tokens = client.runners().issue(&env, opts).await?;
            for t in &tokens {
                writeln!(out, "{}", t.token.to_line().as_str()).map_err(io)?;
            }
            Ok(())
        }
        RunnerTokenCmd::Revoke {
            token_id: Some(token_id),
            ..
        } => {
            client.runners().revoke(&token_id).await?;
            writeln!(out, "revoked runner token {token_id}").map_err(io)
        }
        RunnerTokenCmd::Revoke { env, .. } => {
            let env = env.unwrap_or_else(|| MAIN_ENV.to_string());
            let n = client.runners().revoke_all(&env).await?;
            writeln!(
                out,
                "revoked {n} active runner token(s) of environment {env}"
            )
            .map_err(io)
        }
        RunnerTokenCmd::List { env, limit, output } => {
            let list = client
                .runners()
                .list_tokens(env.as_deref().unwrap_or(""), limit)
                .await?;
            print_listing(
                out,
                output,
                "tokens",
                &list,
                |t| {
                    json!({
                        "token_id": t.token_id,
                        "environment": t.environment,
                        "purpose": t.purpose,
                        "uses_left": t.uses_left,
                        "expires_at": rfc3339(t.expires_at.as_ref()),
                        "created_at": rfc3339(t.created_at.as_ref()),
                        "minted_by": t.created_by,
                        "only": t.only,
                    })
                },
                &[
                    "Token ID",
                    "Env",
                    "Purpose",
                    "Uses Left",
                    "Expires At",
                    "Minted By",
                ],
                |t| {
                    vec![
                        t.token_id.clone(),
                        t.environment.clone(),
                        t.purpose.clone(),
                        t.uses_left.to_string(),
                        rfc3339(t.expires_at.as_ref()),
                        t.created_by.clone(),
                    ]
                },
            )
        }
    }
}

async fn runners(client: &Client, cmd: RunnersCmd, out: &mut impl Write) -> Result<(), CliError> {
    let RunnersCmd::List {
        env,
        stale,
        limit,
        output,
    } = cmd;
    let list = client
        .runners()
        .list(env.as_deref().unwrap_or(""), stale, limit)
        .await?;
    print_listing(
        out,
        output,
        "runners",
        &list,
        |r| {
            json!({
                "runner_id": r.runner_id,
                "environment": r.environment,
                "revision": r.revision,
                "current_revision": r.current_revision,
                "stale": r.stale,
                "started_at": rfc3339(r.started_at.as_ref()),
                "credential_id": r.credential_id,
            })
        },
        &[
            "Runner",
            "Env",
            "Revision",
            "Current",
            "Started At",
            "Stale",
        ],
        |r| {
            vec![
                r.runner_id.clone(),
                r.environment.clone(),
                r.revision.to_string(),
                r.current_revision.to_string(),
                rfc3339(r.started_at.as_ref()),
                if r.stale { "yes" } else { "no" }.to_string(),
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn debug_of_a_parsed_command_line_never_shows_values() {
        let cli = Cli::try_parse_from([
            "runseal",
            "secrets",
            "set",
            "HF_TOKEN=hf-do-not-print",
            "DB=postgres://u:pw-do-not-print@db/x",
            "--env",
            "staging",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            shown.contains("<2 redacted>") && shown.contains("staging"),
            "{shown}"
        );
        assert!(!shown.contains("do-not-print"), "{shown}");
    }
}
