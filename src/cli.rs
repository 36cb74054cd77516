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
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    #[default]
    Pretty,
    Json,
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Set one or more secrets atomically: NAME=VALUE, or NAME=- to read the value from stdin.
    Set {
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<OsString>,
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Runners without an allow-list get these secrets.
        #[arg(long, conflicts_with = "not_exposed_by_default")]
        exposed_by_default: bool,
        /// Only runners whose allow-list names these secrets get them.
        #[arg(long)]
        not_exposed_by_default: bool,
    },
    /// List secret names with their environment and times (never values).
    List {
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    /// Set every NAME=VALUE of a dotenv file (or `-`: stdin) as one atomic batch. `$` is always
    /// literal (no variable substitution); errors name FILE:LINE and the rule, never the text.
    Import {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[arg(long, default_value = MAIN_ENV)]
        env: String,
        /// Runners without an allow-list get these secrets.
        #[arg(long, conflicts_with = "not_exposed_by_default")]
        exposed_by_default: bool,
        /// Only runners whose allow-list names these secrets get them.
        #[arg(long)]
        not_exposed_by_default: bool,
    },
    /// Remove a secret.
    Unset {
        name: String,
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
            SecretsCmd::Unset { name, env } => f
                .debug_struct("Unset")
                .field("name", name)
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
    List {
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    Create {
        name: String,
    },
    /// Delete an environment (refused while it holds secrets, unless --force).
    Delete {
        name: String,
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
        /// admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV or build:ENV (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    List {
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
    Revoke {
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnerTokenCmd {
    /// Mint runner tokens; prints one TOKEN_ID:TOKEN_SECRET per line.
    Issue {
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
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        token_id: Option<String>,
        /// Every active token of the environment given with --env.
        #[arg(long, requires = "env")]
        all: bool,
        #[arg(long)]
        env: Option<String>,
    },
    /// Active tokens (unrevoked, unexpired, uses left): ids, environment, uses left, expiry,
    /// minted by. Never secrets.
    List {
        /// One environment (scope read:ENV or issue:ENV); without it, every one (admin).
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
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
        #[arg(long)]
        env: Option<String>,
        /// Only runners that started before the latest change of their environment.
        #[arg(long)]
        stale: bool,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[arg(long, value_enum, default_value = "pretty")]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, value_enum, default_value = "pretty")]
    pub output: Output,
}

/// Parses the command line like `Cli::parse`, but a usage error never echoes an argument that
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
            let mut text = e.render().to_string();
            for arg in argv.iter().skip(1).filter_map(|a| a.to_str()) {
                if Credential::parse(arg).is_ok() {
                    text = text.replace(arg, "<redacted>");
                }
            }
            eprint!("{text}");
            std::process::exit(e.exit_code());
        }
    }
}

/// A user-facing failure: one line, already worded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(String);

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError(e.to_string())
    }
}

fn fail(msg: impl Into<String>) -> CliError {
    CliError(msg.into())
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
        Command::Completions { .. } | Command::Build(_) => unreachable!("handled above"),
    };
    match result {
        Err(e) if crate::client::is_protocol_mismatch(&e.0) => {
            let why = if cli.addr.starts_with("unix:") || cli.addr.starts_with("https://") {
                "the server there does not speak gRPC: check that it is runseald".to_string()
            } else {
                crate::client::diagnose_plaintext(&cli.addr).await
            };
            Err(fail(format!(
                "cannot talk to runseald at {}: {} ({why})",
                cli.addr, e.0
            )))
        }
        r => r,
    }
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

/// Splits `NAME=VALUE` arguments; `NAME=-` takes the value from stdin (once).
fn parse_pairs(pairs: Vec<OsString>) -> Result<Vec<(String, SecretBytes)>, CliError> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut stdin_used = false;
    for pair in pairs {
        let bytes = Zeroizing::new(pair.into_vec());
        let eq = bytes.iter().position(|b| *b == b'=').ok_or_else(|| {
            fail("expected NAME=VALUE (or NAME=- to read the value from stdin)".to_string())
        })?;
        let name = String::from_utf8(bytes[..eq].to_vec())
            .map_err(|_| fail("a secret name must be ASCII letters, digits and '_'"))?;
        let raw = &bytes[eq + 1..];
        let value = if raw == b"-" {
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

/// The pairs of a dotenv file (`-`: stdin), read into zeroizing buffers only. Errors name the
/// file and the line, never the file's text.
fn import_file(path: &std::path::Path) -> Result<Vec<(String, SecretBytes)>, CliError> {
    let shown = path.display().to_string();
    let mut bytes = Zeroizing::new(Vec::new());
    let read = if shown == "-" {
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut bytes))
    };
    read.map_err(|e| fail(format!("cannot read {shown}: {e}")))?;
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

/// Reads stdin to the end; one trailing newline (from `echo` or a file) is dropped. The value
/// grows in zeroizing buffers only: each outgrown one is wiped as it is replaced.
fn read_stdin_value() -> Result<SecretBytes, CliError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(8192));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = match stdin.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("cannot read the value from stdin: {e}"))),
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
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
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

async fn secrets(client: &Client, cmd: SecretsCmd, out: &mut impl Write) -> Result<(), CliError> {
    match cmd {
        SecretsCmd::Set {
            pairs,
            env,
            exposed_by_default,
            not_exposed_by_default,
        } => {
            let pairs = parse_pairs(pairs)?;
            let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
            let exposed = match (exposed_by_default, not_exposed_by_default) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let revision = client.secrets().set_many_with(&env, pairs, exposed).await?;
            writeln!(
                out,
                "set {} in {env} (revision {revision})",
                names.join(", ")
            )
            .map_err(io)
        }
        SecretsCmd::List { env, output } => {
            let list = client.secrets().list(&env).await?;
            match output {
                Output::Json => print_json(
                    out,
                    json!({ "secrets": list.iter().map(|s| json!({
                        "name": s.name,
                        "environment": s.environment,
                        "created_at": rfc3339(s.created_at.as_ref()),
                        "updated_at": rfc3339(s.updated_at.as_ref()),
                    })).collect::<Vec<_>>() }),
                ),
                Output::Pretty => table(
                    out,
                    &["Name", "Env", "Created At", "Updated At"],
                    &list
                        .iter()
                        .map(|s| {
                            vec![
                                s.name.clone(),
                                s.environment.clone(),
                                rfc3339(s.created_at.as_ref()),
                                rfc3339(s.updated_at.as_ref()),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        SecretsCmd::Import {
            file,
            env,
            exposed_by_default,
            not_exposed_by_default,
        } => {
            let pairs = import_file(&file)?;
            let names: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
            let exposed = match (exposed_by_default, not_exposed_by_default) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let revision = client.secrets().set_many_with(&env, pairs, exposed).await?;
            writeln!(
                out,
                "set {} in {env} (revision {revision})",
                names.join(", ")
            )
            .map_err(io)
        }
        SecretsCmd::Unset { name, env } => {
            let revision = client.secrets().unset(&name, &env).await?;
            writeln!(out, "unset {name} in {env} (revision {revision})").map_err(io)
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
            match output {
                Output::Json => print_json(
                    out,
                    json!({ "environments": list.iter().map(|e| json!({
                        "name": e.name,
                        "revision": e.revision,
                        "secret_count": e.secret_count,
                        "created_at": rfc3339(e.created_at.as_ref()),
                    })).collect::<Vec<_>>() }),
                ),
                Output::Pretty => table(
                    out,
                    &["Name", "Secrets", "Revision", "Created At"],
                    &list
                        .iter()
                        .map(|e| {
                            vec![
                                e.name.clone(),
                                e.secret_count.to_string(),
                                e.revision.to_string(),
                                rfc3339(e.created_at.as_ref()),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
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
            match output {
                Output::Json => print_json(
                    out,
                    json!({ "keys": list.iter().map(|k| json!({
                        "key_id": k.key_id,
                        "label": k.label,
                        "scopes": k.scopes,
                        "created_at": rfc3339(k.created_at.as_ref()),
                        "last_used_at": k.last_used_at.as_ref().map(|t| rfc3339(Some(t))),
                        "revoked_at": k.revoked_at.as_ref().map(|t| rfc3339(Some(t))),
                    })).collect::<Vec<_>>() }),
                ),
                Output::Pretty => table(
                    out,
                    &[
                        "Key ID",
                        "Label",
                        "Scopes",
                        "Created At",
                        "Last Used",
                        "State",
                    ],
                    &list
                        .iter()
                        .map(|k| {
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
                        })
                        .collect::<Vec<_>>(),
                ),
            }
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

async fn audit(client: &Client, args: AuditArgs, out: &mut impl Write) -> Result<(), CliError> {
    let env = args.env.unwrap_or_default();
    let entries = client.audit().list(&env, args.limit).await?;
    match args.output {
        Output::Json => print_json(
            out,
            json!({ "entries": entries.iter().map(|e| json!({
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
            })).collect::<Vec<_>>() }),
        ),
        Output::Pretty => table(
            out,
            &["At", "Key ID", "Action", "Env", "Rev", "Names / runner"],
            &entries
                .iter()
                .map(|e| {
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
                        e.action.clone(),
                        e.environment.clone(),
                        e.revision.map(|r| r.to_string()).unwrap_or_default(),
                        what,
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
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
            match output {
                Output::Json => print_json(
                    out,
                    json!({ "tokens": list.iter().map(|t| json!({
                        "token_id": t.token_id,
                        "environment": t.environment,
                        "purpose": t.purpose,
                        "uses_left": t.uses_left,
                        "expires_at": rfc3339(t.expires_at.as_ref()),
                        "created_at": rfc3339(t.created_at.as_ref()),
                        "minted_by": t.created_by,
                        "only": t.only,
                    })).collect::<Vec<_>>() }),
                ),
                Output::Pretty => table(
                    out,
                    &[
                        "Token ID",
                        "Env",
                        "Purpose",
                        "Uses Left",
                        "Expires At",
                        "Minted By",
                    ],
                    &list
                        .iter()
                        .map(|t| {
                            vec![
                                t.token_id.clone(),
                                t.environment.clone(),
                                t.purpose.clone(),
                                t.uses_left.to_string(),
                                rfc3339(t.expires_at.as_ref()),
                                t.created_by.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
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
    match output {
        Output::Json => print_json(
            out,
            json!({ "runners": list.iter().map(|r| json!({
                "runner_id": r.runner_id,
                "environment": r.environment,
                "revision": r.revision,
                "current_revision": r.current_revision,
                "stale": r.stale,
                "started_at": rfc3339(r.started_at.as_ref()),
                "credential_id": r.credential_id,
            })).collect::<Vec<_>>() }),
        ),
        Output::Pretty => table(
            out,
            &[
                "Runner",
                "Env",
                "Revision",
                "Current",
                "Started At",
                "Stale",
            ],
            &list
                .iter()
                .map(|r| {
                    vec![
                        r.runner_id.clone(),
                        r.environment.clone(),
                        r.revision.to_string(),
                        r.current_revision.to_string(),
                        rfc3339(r.started_at.as_ref()),
                        if r.stale { "yes" } else { "no" }.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
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
