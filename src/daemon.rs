//! `runseald`: the command line of the server (serve, init, rotate-master-key, verify, backup,
//! restore, recover-admin, migrate).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tokio::net::{TcpListener, UnixListener};

use crate::config::{Config, RawConfig};
use crate::datadir::DataDir;
use crate::grpc::{self, Listener};
use crate::service::Service;
use crate::telemetry::{self, LogFormat};
use crate::tls::TlsAcceptor;

#[derive(Debug, Parser)]
#[command(
    name = "runseald",
    version,
    about = "The runseal server: sealed secrets per environment, served over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (initialises an empty data dir and writes <data-dir>/admin.key on first start).
    Serve(ServeArgs),
    /// Initialise a data dir for production: prints the admin key once on stdout.
    Init(DirArgs),
    /// Re-wrap every data key under a new master key (safe while runseald runs); in two steps
    /// with --stage and --finish, so replicas on either key keep starting in between.
    RotateMasterKey(RotateArgs),
    /// Open every sealed value and report any that fails its integrity check.
    Verify(DirArgs),
    /// Copy everything from a SQLite database to an empty PostgreSQL database.
    Migrate(MigrateArgs),
    /// Write a consistent copy of the SQLite store (safe while runseald runs) to one file:
    /// values stay sealed, the master key is not in it.
    Backup(BackupArgs),
    /// Make a new data dir from a backup, with the master key it was taken under.
    Restore(RestoreArgs),
    /// Mint a new admin key with the master key (runseald running or stopped); prints it once.
    RecoverAdmin(RecoverAdminArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Wrap the keys under a new master key as well, keeping the old one valid (and kept as
    /// <master-key-file>.old) until --finish.
    #[arg(long, conflicts_with = "finish")]
    pub stage: bool,
    /// Drop the old master key's wrappings of a --stage; runs with the new key.
    #[arg(long)]
    pub finish: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Data directory whose database is copied.
    #[arg(long, env = "RUNSEALD_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The backup file to write (mode 0600; an existing runseal backup there is replaced).
    #[arg(long)]
    pub to: PathBuf,
    /// PostgreSQL stores are backed up with pg_dump: given, backup refuses and says so.
    #[arg(long, env = "RUNSEALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<crate::store::DatabaseUrl>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (`runseald backup --to FILE`).
    #[arg(long)]
    pub from: PathBuf,
    /// The new data directory (created if missing; must hold no database).
    #[arg(long, env = "RUNSEALD_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The master key the backup was taken under (default: <data-dir>/master.key, or
    /// $CREDENTIALS_DIRECTORY/master.key).
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// PostgreSQL stores are restored with pg_restore: given, restore refuses and says so.
    #[arg(long, env = "RUNSEALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<crate::store::DatabaseUrl>,
}

#[derive(Debug, Args)]
pub struct RecoverAdminArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// The new key's label (shown in `runseal keys list`).
    #[arg(long, default_value = "recovered admin key")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// sqlite:PATH of the source database (e.g. sqlite:./runseal-data/runseal.db).
    #[arg(long)]
    pub from: String,
    /// postgres://… URL of the (empty) target database.
    #[arg(long)]
    pub to: crate::store::DatabaseUrl,
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// Data directory.
    #[arg(long, env = "RUNSEALD_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Master key file (default: <data-dir>/master.key, or $CREDENTIALS_DIRECTORY/master.key).
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// PostgreSQL URL instead of the embedded SQLite file.
    #[arg(long, env = "RUNSEALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl DirArgs {
    fn data_dir(&self) -> DataDir {
        DataDir::new(&self.data_dir, self.master_key_file.clone())
            .with_database_url(self.database_url.clone())
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; flags override its settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./runseal-data].
    #[arg(long, env = "RUNSEALD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Master key file [default: <data-dir>/master.key].
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// Keep secrets in PostgreSQL (postgres://…) instead of the embedded SQLite file.
    #[arg(long, env = "RUNSEALD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// TCP address to serve on [default: 127.0.0.1:7443; none when only --unix is given].
    #[arg(long)]
    pub listen: Option<String>,
    /// Also (or only) serve on this Unix socket (mode 0660).
    #[arg(long)]
    pub unix: Option<PathBuf>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA.
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow plaintext gRPC on a non-loopback address (behind a TLS-terminating proxy).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Serve the web dashboard on ADDR, or `off` [default: 127.0.0.1:7444, skipped with a
    /// warning when taken].
    #[arg(long, value_name = "ADDR|off")]
    pub web_listen: Option<String>,
    /// Allow the dashboard without TLS on a non-loopback address (behind a TLS proxy).
    #[arg(long)]
    pub web_insecure_plaintext: bool,
}

impl ServeArgs {
    /// The config file (if any) with these flags laid over it.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut raw = match &self.config {
            Some(path) => RawConfig::load(path)?,
            None => RawConfig::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if self.$f.is_some() { raw.$f = self.$f; } )* };
        }
        over!(
            data_dir,
            master_key_file,
            database_url,
            listen,
            unix,
            tls_cert,
            tls_key,
            tls_client_ca,
            log_format,
            metrics_listen,
            web_listen
        );
        if self.web_insecure_plaintext {
            raw.web_insecure_plaintext = Some(true);
        }
        if self.insecure_plaintext {
            raw.insecure_plaintext = Some(true);
        }
        Ok(Config::from_raw(raw)?)
    }
}

/// The whole `runseald` program; `main` only reports the error.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            telemetry::init(config.log_format, "info,sqlx=warn");
            serve(config, shutdown_signal()).await
        }
        Command::Init(args) => init(args).await,
        Command::RotateMasterKey(args) => rotate_master_key(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Backup(args) => backup(args).await,
        Command::Restore(args) => restore(args).await,
        Command::RecoverAdmin(args) => recover_admin(args).await,
        Command::Verify(args) => verify(args).await,
    }
}

/// `runseald init`: a new data dir, its admin key printed once on stdout.
async fn init(args: DirArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format, "warn");
    let dir = args.data_dir();
    let opened = dir.init().await?;
    let admin = opened.new_admin.ok_or_else(|| {
        anyhow::anyhow!("init made no admin key (the store was already initialised)")
    })?;
    eprintln!(
        "runseald: initialised {} (master key {} in {}). The admin key follows, shown once:",
        dir.root().display(),
        opened.master_key_id,
        dir.master_key_path().display()
    );
    println!("{}", admin.to_line().as_str());
    Ok(())
}

/// `runseald rotate-master-key`: in one step, or staged with --stage and ended with --finish.
async fn rotate_master_key(args: RotateArgs) -> anyhow::Result<()> {
    telemetry::init(args.dir.log_format, "warn");
    let dir = args.dir.data_dir();
    if args.stage {
        let staged = dir.stage_master_key_rotation().await?;
        println!(
            "master key rotation staged: new key {} in {}, old key {} kept in {} until --finish; replicas on either key start. Give every replica the new key, then run `runseald rotate-master-key --finish`",
            staged.new_id,
            dir.master_key_path().display(),
            staged.old_id,
            staged.old_path.display()
        );
    } else if args.finish {
        let id = dir.finish_master_key_rotation().await?;
        println!(
            "master key rotation finished: only key {id} ({}) opens the database now; {} removed",
            dir.master_key_path().display(),
            dir.old_master_key_path().display()
        );
    } else {
        let id = dir.rotate_master_key().await?;
        println!(
            "master key rotated: new key {id} in {}",
            dir.master_key_path().display()
        );
    }
    Ok(())
}

/// `runseald migrate`: a SQLite database copied into an empty PostgreSQL one.
async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "warn");
    let from = args
        .from
        .strip_prefix("sqlite:")
        .context("--from: expected sqlite:PATH")?;
    if !(args.to.expose().starts_with("postgres://")
        || args.to.expose().starts_with("postgresql://"))
    {
        bail!("--to: expected a postgres:// URL");
    }
    let report = crate::store::migrate::sqlite_to_postgres(from.as_ref(), &args.to)
        .await
        .with_context(|| format!("migration to {} failed; nothing was written", args.to))?;
    let total: u64 = report.iter().map(|(_, n)| n).sum();
    println!(
        "migrated {total} rows to {}; start runseald with --database-url and the same master key",
        args.to
    );
    Ok(())
}

/// `runseald backup`: the SQLite store copied to one file, values still sealed.
async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "warn");
    let dir = DataDir::new(&args.data_dir, None);
    let postgres = args.database_url.is_some();
    let to = args.to.clone();
    let report = tokio::task::spawn_blocking(move || crate::backup::backup(&dir, postgres, &to))
        .await
        .context("the backup task failed")??;
    println!(
        "backed up {} to {} ({} bytes); restoring it needs the master key {} (not in the backup: keep it apart)",
        args.data_dir.display(),
        args.to.display(),
        report.file_bytes,
        report.header.master_key_id()
    );
    Ok(())
}

/// `runseald restore`: a new data dir made from a backup.
async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "warn");
    let dir = DataDir::new(&args.data_dir, args.master_key_file.clone());
    let postgres = args.database_url.is_some();
    let from = args.from.clone();
    let restored = dir.clone();
    let header =
        tokio::task::spawn_blocking(move || crate::backup::restore(&from, &restored, postgres))
            .await
            .context("the restore task failed")??;
    println!(
        "restored {} (taken {}) into {}; start it with `runseald serve --data-dir {}` and the master key {} ({})",
        args.from.display(),
        header.created_at,
        dir.database_path().display(),
        args.data_dir.display(),
        header.master_key_id(),
        dir.master_key_path().display()
    );
    Ok(())
}

/// `runseald recover-admin`: a new admin key minted with the master key, printed once.
async fn recover_admin(args: RecoverAdminArgs) -> anyhow::Result<()> {
    telemetry::init(args.dir.log_format, "warn");
    crate::service::check_label(&args.label).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let dir = args.dir.data_dir();
    let admin = dir.recover_admin(args.label).await?;
    eprintln!(
        "runseald: new admin key {} for {} (audited as key.recover_admin). It follows, shown once:",
        admin.key_id(),
        dir.database_description()
    );
    println!("{}", admin.to_line().as_str());
    Ok(())
}

/// `runseald verify`: every sealed value opened and every integrity MAC checked; fails when
/// any does not hold.
async fn verify(args: DirArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format, "warn");
    let dir = args.data_dir();
    let opened = dir.open().await?;
    let rows = opened.store.all_sealed_secrets().await?;
    let mut bad = 0;
    for (env, s) in &rows {
        if let Err(e) = opened.sealer.open(env, &s.name, &s.sealed) {
            bad += 1;
            println!("FAILED {env}/{}: {e}", s.name);
        }
    }
    println!("{} sealed values checked, {bad} failed", rows.len());
    // The MACs of every key, runner token, runner start, kept version and environment
    // revision.
    let integrity = opened.integrity.clone();
    let macs = opened.store.integrity_rows().await?;
    let mut bad_versions = 0;
    for (v, _) in &macs.versions {
        if let Err(e) = opened.sealer.open(&v.environment, &v.name, &v.sealed) {
            bad_versions += 1;
            println!(
                "FAILED {}/{} version {}: {e}",
                v.environment, v.name, v.version
            );
        }
    }
    println!(
        "{} kept versions checked, {bad_versions} failed",
        macs.versions.len()
    );
    bad += bad_versions;
    let tampered = macs.failures(&integrity);
    for row in &tampered {
        println!("TAMPERED {row}: its integrity MAC does not match (changed outside runseald)");
    }
    let checked = macs.keys.len()
        + macs.tokens.len()
        + macs.runners.len()
        + macs.versions.len()
        + macs.environments.len();
    println!("{checked} rows checked, {} failed", tampered.len());
    // Stored names the default denied set refuses now: snapshots leave them out.
    let policy = crate::names::NamePolicy::default();
    for (env, s) in &rows {
        if let Some(reason) = policy.denied(&s.name) {
            println!("DENIED {env}/{}: left out of snapshots: {reason}", s.name);
        }
    }
    opened.store.close().await;
    if bad > 0 || !tampered.is_empty() {
        bail!(
            "{bad} sealed value(s) and {} row(s) failed their integrity check",
            tampered.len()
        );
    }
    Ok(())
}

/// What systemd's unit does for runseald, done by runseald itself so it holds outside systemd
/// too: non-dumpable (no ptrace or /proc/PID/mem reads by the same user), no core dumps (a core
/// of a SIGABRT held a plaintext value), and memory locked where RLIMIT_MEMLOCK is unlimited,
/// with MCL_ONFAULT so pages are locked as they are touched and a growing server never fails to
/// allocate.
fn harden_process() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot make runseald non-dumpable");
    }
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        tracing::warn!(error = %e, "cannot set RLIMIT_CORE to 0");
    }
    let unlimited =
        matches!(getrlimit(Resource::RLIMIT_MEMLOCK), Ok((soft, _)) if soft == RLIM_INFINITY);
    if unlimited {
        use nix::sys::mman::{mlockall, MlockAllFlags};
        let flags = MlockAllFlags::MCL_CURRENT
            | MlockAllFlags::MCL_FUTURE
            | MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT);
        match mlockall(flags) {
            Ok(()) => tracing::info!("memory locked (mlockall, MCL_ONFAULT)"),
            Err(e) => tracing::warn!(error = %e, "cannot lock memory"),
        }
    } else {
        tracing::debug!("RLIMIT_MEMLOCK is limited: memory not locked");
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the line already
/// holds (an error that prints its source, and also returns it as `source()`) is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Runs the server until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    harden_process();
    if config.policy.replaces_defaults() {
        tracing::warn!(
            "denied_names replaces the default denied set of secret names (interpreter, loader, shell, TLS and proxy variables): those names are accepted now; use extra_denied_names to add names and allowed_names to allow single ones instead"
        );
    }
    let dir = DataDir::new(&config.data_dir, config.master_key_file.clone())
        .with_database_url(config.database_url.clone());
    let opened = dir.open_or_init().await.with_context(|| {
        format!(
            "cannot open data dir {} (database {})",
            config.data_dir.display(),
            dir.database_description()
        )
    })?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        database = %dir.database_description(),
        master_key = %opened.master_key_id,
        "store opened"
    );
    let mut service = Service::new(
        opened.store.clone(),
        opened.sealer,
        config.policy.clone(),
        config.limits,
    );
    service.expose_by_default = config.expose_by_default;
    service.token_limits = config.token_limits;
    service.session_limits = config.session_limits;
    let service = Arc::new(service);
    tokio::spawn(prune(
        service.clone(),
        config.runner_retention,
        config.audit_retention,
    ));

    let acceptor = match &config.tls {
        Some(files) => Some(TlsAcceptor::new(files.clone())?),
        None => None,
    };
    let mut activated = listenfd::ListenFd::from_env();
    let (listeners, web_listener) = if activated.len() > 0 {
        activated_listeners(&mut activated, &config, &acceptor)?
    } else {
        bound_listeners(&config, &acceptor)?
    };
    if let Some(addr) = config.metrics_listen {
        spawn_metrics(addr).await?;
    }
    let mut reloaded: Vec<TlsAcceptor> = acceptor.iter().cloned().collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(l) = web_listener {
        reloaded.extend(spawn_dashboard(l, &config, service.clone(), stop_rx)?);
    }
    if !reloaded.is_empty() {
        tokio::spawn(reload_tls_on_sighup(reloaded));
    }
    let watched = service.clone();
    let routes = grpc::routes(service).await;
    // Listening sockets are bound: tell systemd (Type=notify) we are ready.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        watched.stop_watches();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    };
    grpc::serve_with(routes, listeners, config.net.clone(), shutdown).await?;
    opened.store.close().await;
    tracing::info!("shut down");
    Ok(())
}

/// Socket activation: the gRPC listeners and the dashboard's on the inherited sockets instead
/// of bound ones.
fn activated_listeners(
    activated: &mut listenfd::ListenFd,
    config: &Config,
    acceptor: &Option<TlsAcceptor>,
) -> anyhow::Result<(Vec<Listener>, Option<TcpListener>)> {
    let mut listeners = Vec::new();
    let mut web_listener = None;
    // systemd names each socket (FileDescriptorName=): the one named `web` is the dashboard's.
    let fd_names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for i in 0..activated.len() {
        if fd_names.get(i).map(String::as_str) == Some("web") {
            let l = activated
                .take_tcp_listener(i)
                .ok()
                .flatten()
                .with_context(|| {
                    format!("inherited socket {} (named web) is not a TCP socket", i + 3)
                })?;
            l.set_nonblocking(true)?;
            web_listener = Some(TcpListener::from_std(l)?);
        } else if let Ok(Some(l)) = activated.take_tcp_listener(i) {
            l.set_nonblocking(true)?;
            listeners.push(tcp_listener(TcpListener::from_std(l)?, config, acceptor)?);
        } else if let Ok(Some(l)) = activated.take_unix_listener(i) {
            l.set_nonblocking(true)?;
            tracing::info!(fd = i + 3, "listening (activated unix socket)");
            listeners.push(Listener::Unix(UnixListener::from_std(l)?));
        } else {
            bail!(
                "inherited socket {} (LISTEN_FDS) is neither a TCP nor a Unix stream socket",
                i + 3
            );
        }
    }
    // Without an inherited dashboard socket, only an explicit address is bound.
    if web_listener.is_none() && matches!(config.web_listen, crate::config::WebListen::Explicit(_))
    {
        web_listener = bind_web(config.web_listen)?;
    }
    Ok((listeners, web_listener))
}

/// The gRPC listeners and the dashboard's, bound to the configured addresses.
fn bound_listeners(
    config: &Config,
    acceptor: &Option<TlsAcceptor>,
) -> anyhow::Result<(Vec<Listener>, Option<TcpListener>)> {
    let mut listeners = Vec::new();
    // The dashboard's address first: a fatal failure to bind it comes before runseald
    // announces any listener.
    let web_listener = bind_web(config.web_listen)?;
    if let Some(addr) = config.listen {
        let l = bind_tcp(addr).with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(tcp_listener(l, config, acceptor)?);
    }
    if let Some(path) = &config.unix {
        listeners.push(Listener::Unix(bind_unix(path)?));
    }
    Ok((listeners, web_listener))
}

/// Serves Prometheus metrics on `addr` in the background.
async fn spawn_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let l = crate::metrics::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    tracing::info!(addr = %l.local_addr()?, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(l, std::future::pending()).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(())
}

/// Serves the dashboard on `l` in the background until `stop` turns true; returns its TLS
/// acceptor (for SIGHUP reloads) when it serves TLS.
fn spawn_dashboard(
    l: TcpListener,
    config: &Config,
    service: Arc<Service>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<TlsAcceptor>> {
    let web_tls = match &config.tls {
        Some(files) => Some(TlsAcceptor::with_alpn(
            files.clone(),
            crate::tls::ALPN_HTTP1,
        )?),
        None => None,
    };
    let local = l.local_addr()?;
    if web_tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(addr = %local, "serving the dashboard in PLAINTEXT on a non-loopback address (--web-insecure-plaintext): keys cross the network unencrypted");
    }
    let scheme = if web_tls.is_some() { "https" } else { "http" };
    let web_config = crate::web::WebConfig::for_addr(
        local,
        web_tls.is_some(),
        &config.web_hosts,
        crate::web::body_limit(&config.limits),
    );
    tracing::info!(url = %format!("{scheme}://{local}/"), "dashboard listening");
    let web = crate::web::Web::new(service, web_config);
    tokio::spawn(crate::web::serve(l, web_tls.clone(), web, stop));
    Ok(web_tls)
}

/// Binds the dashboard's listener: the default address only when free (a warning otherwise,
/// e.g. a second replica on one host), an explicit one or nothing.
fn bind_web(listen: crate::config::WebListen) -> anyhow::Result<Option<TcpListener>> {
    use crate::config::WebListen;
    match listen {
        WebListen::Off => Ok(None),
        WebListen::Explicit(addr) => bind_tcp(addr)
            .map(Some)
            .with_context(|| format!("cannot listen for the dashboard on {addr}")),
        WebListen::Default(addr) => match bind_tcp(addr) {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(addr = %addr, error = %e, "serving without the dashboard: its default address is taken (give --web-listen ADDR, or --web-listen off)");
                Ok(None)
            }
        },
    }
}

/// SIGHUP: re-read the TLS certificate and key; open connections keep theirs.
/// Every listener's acceptor (gRPC and the dashboard) is reloaded before the reload is logged.
async fn reload_tls_on_sighup(acceptors: Vec<TlsAcceptor>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP; TLS reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        match acceptors.iter().try_for_each(TlsAcceptor::reload) {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the previous certificate")
            }
        }
    }
}

/// Drops runner records (and expired tokens) and audit rows older than their retention, hourly.
async fn prune(
    service: Arc<Service>,
    runner_retention: std::time::Duration,
    audit_retention: std::time::Duration,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        service.prune(runner_retention, audit_retention).await;
    }
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`). A
/// scale-up connects hundreds of runners at once; a connection that finds the queue full has
/// its SYN dropped and retries only after a second, so tokio's default of 128 made the slowest
/// runners of a burst wait a whole second (`docs/bench/NOTES.md`). Socket-activated listeners
/// keep the backlog their unit sets (systemd's default is the same cap).
const LISTEN_BACKLOG: u32 = 4096;

fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted runseald may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn tcp_listener(
    listener: TcpListener,
    config: &Config,
    acceptor: &Option<TlsAcceptor>,
) -> anyhow::Result<Listener> {
    let local = listener.local_addr()?;
    match acceptor {
        Some(acceptor) => {
            tracing::info!(addr = %local, client_auth = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()), "listening (TLS)");
            Ok(Listener::Tls(listener, acceptor.clone()))
        }
        None => {
            if !local.ip().is_loopback() {
                if !config.insecure_plaintext {
                    bail!(crate::config::ConfigError::PlaintextOnNetwork(local));
                }
                tracing::warn!(addr = %local, "serving PLAINTEXT gRPC on a non-loopback address (--insecure-plaintext): keys and values cross the network unencrypted");
            }
            tracing::info!(addr = %local, "listening");
            Ok(Listener::Tcp(listener))
        }
    }
}

fn bind_unix(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
        } else {
            bail!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            );
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    tracing::info!(path = %path.display(), "listening (unix socket)");
    Ok(listener)
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // Installing a handler fails only when the runtime has no signal driver, a start-up bug.
    #[allow(clippy::expect_used)]
    let (mut term, mut int) = (
        signal(SignalKind::terminate()).expect("SIGTERM handler"),
        signal(SignalKind::interrupt()).expect("SIGINT handler"),
    );
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight calls"),
        _ = int.recv() => tracing::info!("SIGINT: finishing in-flight calls"),
    }
}
