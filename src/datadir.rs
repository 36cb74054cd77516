//! The data directory: master key file, SQLite database, first-start admin key; creating it,
//! opening it (refusing a wrong or missing master key), rotating the master key.
//!
//! Files holding key material are created with mode 0600 inside a 0700 directory, written and
//! fsynced before they are relied on. The master key and admin key are never logged; only their
//! paths (and the master key's public id) are.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::auth::{generate_key, Credential, Scope};
use crate::integrity::{IntegrityKey, INTEGRITY_KEY_ID};
use crate::seal::{new_data_key_id, DataKey, MasterKey, SealError, Sealer};
use crate::store::{
    AuditRecord, DataKeyRow, DatabaseUrl, InitialState, KeyRow, PostgresStore, SqliteStore, Store,
    StoreError, META_ACTIVE_DATA_KEY, META_MASTER_KEY_CHECK, META_STAGED_MASTER_KEY_CHECK,
};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const ADMIN_KEY_FILE: &str = "admin.key";
pub const DATABASE_FILE: &str = "runseal.db";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the master key file {0} is missing, but the database is initialised: runseald needs the key it was initialised with (restore it, or point --master-key-file at it)")]
    MasterKeyMissing(PathBuf),
    #[error(
        "the master key in {0} does not match this database (wrong key file?): refusing to start"
    )]
    WrongMasterKey(PathBuf),
    #[error("the master key in {path} (check value id {found}) matches neither this database's current master key (id {current}) nor the staged new one (id {staged}) of the rotation in progress: refusing to start")]
    WrongMasterKeyStaged {
        path: PathBuf,
        found: String,
        current: String,
        staged: String,
    },
    #[error("a master key rotation is staged (new key id {0}): finish it with `runseald rotate-master-key --finish` before another rotation")]
    RotationStaged(String),
    #[error(
        "no master key rotation is staged: `--finish` completes a `rotate-master-key --stage`"
    )]
    NothingStaged,
    #[error("the master key in {path} (check value id {found}) is not the staged new key (id {staged}): `--finish` runs with the new key, which `--stage` wrote there")]
    FinishNeedsNewKey {
        path: PathBuf,
        found: String,
        staged: String,
    },
    #[error("the master key file {path} is invalid: {source}")]
    BadMasterKey { path: PathBuf, source: SealError },
    #[error("{0} is already initialised: refusing to initialise it again")]
    AlreadyInitialized(PathBuf),
    #[error("the database is not initialised: run `runseald init` or `runseald serve` first")]
    NotInitialized,
    #[error("{what} {path} is accessible to {who}: refusing to start; run `chmod {fix} {path}`")]
    Exposed {
        what: &'static str,
        path: PathBuf,
        who: String,
        fix: &'static str,
    },
    #[error("the parent directory of the data dir {0} does not exist: runseald creates only the data dir itself (a typo in --data-dir would start an empty server with a new admin key); create the parent first or fix the path")]
    NoParent(PathBuf),
    #[error("stored keys are unusable: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = DataDirError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths of one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    master_key: PathBuf,
    /// `None`: the embedded SQLite file `<root>/runseal.db`.
    database_url: Option<DatabaseUrl>,
}

/// What opening a data directory yields.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub sealer: Sealer,
    pub master_key_id: String,
    /// The key of the row MACs (also handed to the store).
    pub integrity: Arc<IntegrityKey>,
    /// The admin key created on this start (first start only).
    pub new_admin: Option<Credential>,
}

/// What to do with a newly created admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminKeyOutput {
    /// `serve` on an empty dir: write it to `<data-dir>/admin.key` (0600).
    File,
    /// `init`: the caller prints it once.
    Return,
}

impl DataDir {
    /// `master_key` overrides the default: the systemd credential
    /// `$CREDENTIALS_DIRECTORY/master.key` when present, else `<root>/master.key`.
    pub fn new(root: impl Into<PathBuf>, master_key: Option<PathBuf>) -> Self {
        let root = root.into();
        let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|d| PathBuf::from(d).join(MASTER_KEY_FILE))
            .filter(|p| p.exists());
        let master_key = master_key
            .or(credential)
            .unwrap_or_else(|| root.join(MASTER_KEY_FILE));
        Self {
            root,
            master_key,
            database_url: None,
        }
    }

    /// Keeps secrets in PostgreSQL at `url` instead of the SQLite file (the data dir still holds
    /// the master key and the first admin key).
    pub fn with_database_url(mut self, url: Option<impl Into<DatabaseUrl>>) -> Self {
        self.database_url = url.map(Into::into);
        self
    }

    /// Where the secrets live, for messages (never includes a password).
    pub fn database_description(&self) -> String {
        match &self.database_url {
            Some(url) => url.to_string(),
            None => self.database_path().display().to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database_path(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    pub fn admin_key_path(&self) -> PathBuf {
        self.root.join(ADMIN_KEY_FILE)
    }

    pub fn master_key_path(&self) -> &Path {
        &self.master_key
    }

    fn pending_admin_key_path(&self) -> PathBuf {
        self.root.join("admin.key.new")
    }

    /// Where `rotate-master-key --stage` keeps the old key until `--finish`.
    pub fn old_master_key_path(&self) -> PathBuf {
        let mut p = self.master_key.clone().into_os_string();
        p.push(".old");
        PathBuf::from(p)
    }

    fn pending_master_key_path(&self) -> PathBuf {
        let mut p = self.master_key.clone().into_os_string();
        p.push(".new");
        PathBuf::from(p)
    }

    fn ensure_root(&self) -> Result<()> {
        if !self.root.exists() {
            // Never the parents: `--data-dir /typo/path` must not become a new, empty server.
            let parent = match self.root.parent() {
                Some(p) if p.as_os_str().is_empty() => Path::new("."),
                Some(p) => p,
                None => Path::new("/"),
            };
            if !parent.is_dir() {
                return Err(DataDirError::NoParent(self.root.clone()));
            }
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.root)
                .map_err(io_err(&self.root))?;
            tracing::warn!(data_dir = %self.root.display(), "created a new, empty data dir");
        }
        refuse_exposed(&self.root, "the data dir", "700")
    }

    async fn open_store(&self) -> Result<Arc<dyn Store>> {
        self.ensure_root()?;
        if let Some(url) = &self.database_url {
            return Ok(Arc::new(PostgresStore::open(url).await?));
        }
        let db = self.database_path();
        if !db.exists() {
            // Created here so it is 0600 from the first byte; SQLite gives its WAL the same mode.
            create_private(&db, &[])?;
        }
        Ok(Arc::new(SqliteStore::open(&db).await?))
    }

    /// `runseald serve`: opens an initialised directory, or initialises an empty one.
    pub async fn open_or_init(&self) -> Result<Opened> {
        self.check_master_key_first()?;
        let store = self.open_store().await?;
        if store.is_initialized().await? {
            return self.open_initialized(store).await;
        }
        self.initialize(store, AdminKeyOutput::File).await
    }

    /// A master key file that is already there must be usable before anything is created: a
    /// key runseald would refuse (readable by others, wrong length) must not leave a new data
    /// dir and an uninitialised database behind. A missing file is made at initialisation.
    fn check_master_key_first(&self) -> Result<()> {
        if self.master_key.exists() {
            read_master_key(&self.master_key)?;
        }
        Ok(())
    }

    /// `runseald init`: initialises an empty directory; refuses one that is initialised.
    pub async fn init(&self) -> Result<Opened> {
        self.check_master_key_first()?;
        if self.admin_key_path().exists() {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        let store = self.open_store().await?;
        if store.is_initialized().await? {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        self.initialize(store, AdminKeyOutput::Return).await
    }

    /// Opens an initialised directory (never initialises).
    pub async fn open(&self) -> Result<Opened> {
        if self.database_url.is_none() && !self.database_path().exists() {
            return Err(DataDirError::NotInitialized);
        }
        let store = self.open_store().await?;
        if !store.is_initialized().await? {
            return Err(DataDirError::NotInitialized);
        }
        self.open_initialized(store).await
    }

    async fn initialize(&self, store: Arc<dyn Store>, output: AdminKeyOutput) -> Result<Opened> {
        // An operator may have provisioned the master key beforehand; otherwise make one.
        let master = if self.master_key.exists() {
            read_master_key(&self.master_key)?
        } else {
            let key = MasterKey::generate();
            create_private(&self.master_key, key.expose())?;
            key
        };
        let now = OffsetDateTime::now_utc();
        let data_key_id = new_data_key_id();
        let data_key = DataKey::generate();
        let admin = generate_key();
        let integrity = Arc::new(IntegrityKey::generate());
        let init = InitialState {
            master_key_check: master.check_value().to_vec(),
            data_key: DataKeyRow {
                id: data_key_id.clone(),
                master_key_id: master.id(),
                wrapped: master.wrap(&data_key_id, &data_key)?,
                created_at: now,
            },
            integrity_key: DataKeyRow {
                id: INTEGRITY_KEY_ID.to_string(),
                master_key_id: master.id(),
                wrapped: master.wrap_integrity_key(&integrity)?,
                created_at: now,
            },
            integrity: integrity.clone(),
            admin_key: KeyRow {
                id: admin.key_id().to_string(),
                secret_hash: admin.secret_hash().to_vec(),
                label: "initial admin key".into(),
                scopes: Scope::Admin.to_string(),
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            },
            at: now,
        };
        // The admin key is on disk before the database knows it, and appears under its final
        // name only after the commit: a crash in between never leaves a key nobody can read.
        let pending_admin = self.pending_admin_key_path();
        if output == AdminKeyOutput::File {
            remove_leftover(&pending_admin)?;
            let mut line = admin.to_line();
            line.push('\n');
            create_private(&pending_admin, line.as_bytes())?;
        }
        match store.initialize(init).await {
            Ok(()) => store.set_integrity_key(integrity.clone()),
            // Another replica initialised the shared database first: join it instead.
            Err(StoreError::AlreadyInitialized) if output == AdminKeyOutput::File => {
                let _ = fs::remove_file(&pending_admin);
                tracing::info!("the database was initialised by another replica; joining it");
                return self.open_initialized(store).await;
            }
            Err(e) => return Err(e.into()),
        }
        if output == AdminKeyOutput::File {
            let path = self.admin_key_path();
            replace_file(&pending_admin, &path)?;
            tracing::info!(path = %path.display(), key_id = %admin.key_id(), "initialised; admin key written");
        }
        let sealer = Sealer::new(
            data_key_id.clone(),
            HashMap::from([(data_key_id, data_key)]),
        )?;
        Ok(Opened {
            store,
            sealer,
            master_key_id: master.id(),
            integrity,
            new_admin: Some(admin),
        })
    }

    async fn open_initialized(&self, store: Arc<dyn Store>) -> Result<Opened> {
        let check = store
            .meta(META_MASTER_KEY_CHECK)
            .await?
            .ok_or(DataDirError::NotInitialized)?;
        let staged = store.meta(META_STAGED_MASTER_KEY_CHECK).await?;
        let (master, which) = self.load_matching_master_key(&check, staged.as_deref())?;
        let active = store
            .meta(META_ACTIVE_DATA_KEY)
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| StoreError::Corrupt("no active data key recorded".into()))?;
        let mut keys = HashMap::new();
        let mut integrity = None;
        let rows = match which {
            Wrapping::Current => store.data_keys().await?,
            Wrapping::Staged => store.staged_wrappings().await?,
        };
        for row in rows {
            if row.id == INTEGRITY_KEY_ID {
                integrity = Some(master.unwrap_integrity_key(&row.wrapped)?);
            } else {
                let key = master.unwrap_key(&row.id, &row.wrapped)?;
                keys.insert(row.id, key);
            }
        }
        let integrity = match integrity {
            Some(k) => k,
            None => upgrade_integrity(store.as_ref(), &master).await?,
        };
        let integrity = Arc::new(integrity);
        store.set_integrity_key(integrity.clone());
        let kept = store.backfill_versions().await?;
        if kept > 0 {
            tracing::info!(
                values = kept,
                "kept the values set before history as their version 1"
            );
        }
        let sealer = Sealer::new(active, keys)?;
        // Finish a first start that committed but was stopped before renaming the admin key.
        // On a shared database the pending key may instead be one that lost the race to another
        // replica's first start: it is only kept if the database knows it.
        let pending_admin = self.pending_admin_key_path();
        if pending_admin.exists() && !self.admin_key_path().exists() {
            let line =
                Zeroizing::new(fs::read_to_string(&pending_admin).map_err(io_err(&pending_admin))?);
            let known = match Credential::parse(line.trim()) {
                Ok(cred) => store.key(cred.key_id()).await?.is_some(),
                Err(_) => false,
            };
            if known {
                replace_file(&pending_admin, &self.admin_key_path())?;
                tracing::warn!(path = %self.admin_key_path().display(), "finished writing the admin key of an interrupted first start");
            } else {
                fs::remove_file(&pending_admin).map_err(io_err(&pending_admin))?;
                tracing::info!(path = %pending_admin.display(), "removed the admin key of a first start that another replica won");
            }
        }
        Ok(Opened {
            store,
            sealer,
            master_key_id: master.id(),
            integrity,
            new_admin: None,
        })
    }

    /// The master key file, checked against the stored check value (and, while a rotation is
    /// staged, the staged one). Finishes an interrupted rotation: if the database already holds
    /// the new key's check value, `master.key.new` replaces `master.key`; if it still holds the
    /// old one only, the leftover is removed. A staged rotation interrupted before its files
    /// moved is finished the same way, keeping the old key as `master.key.old`.
    fn load_matching_master_key(
        &self,
        check: &[u8],
        staged: Option<&[u8]>,
    ) -> Result<(MasterKey, Wrapping)> {
        let pending = self.pending_master_key_path();
        if !self.master_key.exists() && !pending.exists() {
            return Err(DataDirError::MasterKeyMissing(self.master_key.clone()));
        }
        if let Some(staged) = staged {
            if pending.exists() {
                let key = read_master_key(&pending)?;
                if key.matches_check_value(staged) {
                    tracing::warn!(path = %self.master_key.display(), "finishing the file moves of an interrupted `rotate-master-key --stage`");
                    self.move_staged_files(&pending)?;
                    return Ok((key, Wrapping::Staged));
                }
            }
        }
        let mut found = None;
        if self.master_key.exists() {
            let key = read_master_key(&self.master_key)?;
            if key.matches_check_value(check) {
                if pending.exists() {
                    tracing::warn!(path = %pending.display(), "removing the key of a rotation that did not commit");
                    fs::remove_file(&pending).map_err(io_err(&pending))?;
                }
                return Ok((key, Wrapping::Current));
            }
            if staged.is_some_and(|s| key.matches_check_value(s)) {
                return Ok((key, Wrapping::Staged));
            }
            found = Some(key.id());
        }
        if pending.exists() {
            let key = read_master_key(&pending)?;
            if key.matches_check_value(check) {
                tracing::warn!(path = %self.master_key.display(), "finishing an interrupted master key rotation");
                replace_file(&pending, &self.master_key)?;
                return Ok((key, Wrapping::Current));
            }
        }
        match (staged, found) {
            (Some(staged), Some(found)) => Err(DataDirError::WrongMasterKeyStaged {
                path: self.master_key.clone(),
                found,
                current: check_id(check),
                staged: check_id(staged),
            }),
            _ => Err(DataDirError::WrongMasterKey(self.master_key.clone())),
        }
    }

    /// After a staged rotation committed: `master.key` → `master.key.old`, then
    /// `master.key.new` → `master.key` (each a rename, so each file keeps its 0600).
    fn move_staged_files(&self, pending: &Path) -> Result<()> {
        let old = self.old_master_key_path();
        if self.master_key.exists() {
            replace_file(&self.master_key, &old)?;
        }
        replace_file(pending, &self.master_key)
    }

    /// Re-wraps every data key under a new master key. Old rows keep opening throughout: data
    /// keys do not change, and the swap of wrappings and check value is one transaction. A
    /// running runseald keeps serving (it holds the unwrapped data keys).
    pub async fn rotate_master_key(&self) -> Result<String> {
        let opened = self.open().await?;
        if let Some(staged) = opened.store.meta(META_STAGED_MASTER_KEY_CHECK).await? {
            opened.store.close().await;
            return Err(DataDirError::RotationStaged(check_id(&staged)));
        }
        let old = read_master_key(&self.master_key)?;
        let new = MasterKey::generate();
        let pending = self.pending_master_key_path();
        remove_leftover(&pending)?;
        create_private(&pending, new.expose())?;
        let rewrapped = rewrap(opened.store.data_keys().await?, &old, &new)?;
        let audit = by_runseald("master-key.rotate", vec![old.id(), new.id()]);
        opened
            .store
            .rewrap_data_keys(new.check_value().to_vec(), rewrapped, audit)
            .await?;
        replace_file(&pending, &self.master_key)?;
        Ok(new.id())
    }
}

/// Which stored wrappings a master key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapping {
    /// `data_keys`, under the check value `master_key_check`.
    Current,
    /// `staged_wrappings`, under `staged_master_key_check` (a rotation is staged).
    Staged,
}

/// What `rotate-master-key --stage` did.
#[derive(Debug)]
pub struct Staged {
    pub old_id: String,
    pub new_id: String,
    pub old_path: PathBuf,
}

impl DataDir {
    /// `rotate-master-key --stage`: wraps every data key and the integrity key under a new
    /// master key too, and stores its check value beside the current one, in one transaction.
    /// Replicas holding either key keep starting. The new key replaces `master.key`; the old
    /// one is kept as `master.key.old` (0600) until [`DataDir::finish_master_key_rotation`].
    pub async fn stage_master_key_rotation(&self) -> Result<Staged> {
        self.with_store(async |store| self.stage_with(store).await)
            .await
    }

    /// Runs `f` on the opened store, which is closed after it whatever it returns.
    async fn with_store<T>(&self, f: impl AsyncFnOnce(&dyn Store) -> Result<T>) -> Result<T> {
        let opened = self.open().await?;
        let result = f(opened.store.as_ref()).await;
        opened.store.close().await;
        result
    }

    async fn stage_with(&self, store: &dyn Store) -> Result<Staged> {
        if let Some(staged) = store.meta(META_STAGED_MASTER_KEY_CHECK).await? {
            return Err(DataDirError::RotationStaged(check_id(&staged)));
        }
        let old = read_master_key(&self.master_key)?;
        let new = MasterKey::generate();
        let pending = self.pending_master_key_path();
        remove_leftover(&pending)?;
        let old_path = self.old_master_key_path();
        // A leftover of a finished rotation that could not remove it.
        remove_leftover(&old_path)?;
        create_private(&pending, new.expose())?;
        let wrapped = rewrap(store.data_keys().await?, &old, &new)?;
        let audit = by_runseald("master-key.rotate.stage", vec![old.id(), new.id()]);
        if let Err(e) = store
            .stage_wrappings(new.check_value().to_vec(), wrapped, audit)
            .await
        {
            let _ = fs::remove_file(&pending);
            return Err(e.into());
        }
        self.move_staged_files(&pending)?;
        Ok(Staged {
            old_id: old.id(),
            new_id: new.id(),
            old_path,
        })
    }

    /// `rotate-master-key --finish`: the new key's wrappings become the only ones (replicas on
    /// the old key no longer start) and `master.key.old` is removed. Runs with the new key.
    pub async fn finish_master_key_rotation(&self) -> Result<String> {
        self.with_store(async |store| self.finish_with(store).await)
            .await
    }

    async fn finish_with(&self, store: &dyn Store) -> Result<String> {
        let staged = store
            .meta(META_STAGED_MASTER_KEY_CHECK)
            .await?
            .ok_or(DataDirError::NothingStaged)?;
        let key = read_master_key(&self.master_key)?;
        if !key.matches_check_value(&staged) {
            return Err(DataDirError::FinishNeedsNewKey {
                path: self.master_key.clone(),
                found: key.id(),
                staged: check_id(&staged),
            });
        }
        let check = store
            .meta(META_MASTER_KEY_CHECK)
            .await?
            .ok_or(DataDirError::NotInitialized)?;
        let audit = by_runseald("master-key.rotate.finish", vec![check_id(&check), key.id()]);
        store.finish_staged(audit).await?;
        let old = self.old_master_key_path();
        remove_leftover(&old)?;
        Ok(key.id())
    }
}

impl DataDir {
    /// `runseald recover-admin`: a new admin key, minted with the master key at hand (the
    /// server may be running or stopped). Its row carries the integrity MAC like every key's,
    /// and the audit log records it (`key.recover_admin`). The credential is returned to be
    /// shown once; nothing else keeps it.
    pub async fn recover_admin(&self, label: String) -> Result<Credential> {
        let opened = self.open().await?;
        let admin = generate_key();
        let now = OffsetDateTime::now_utc();
        let row = KeyRow {
            id: admin.key_id().to_string(),
            secret_hash: admin.secret_hash().to_vec(),
            label,
            scopes: Scope::Admin.to_string(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let audit = AuditRecord::new(
            now,
            "runseald",
            "key.recover_admin",
            None,
            vec![row.id.clone()],
        );
        let inserted = opened.store.insert_key(row, audit).await;
        opened.store.close().await;
        inserted?;
        tracing::info!(key_id = %admin.key_id(), "recovery admin key created");
        Ok(admin)
    }
}

/// The first bytes of a master key's check value, in hex: how errors and the audit log name
/// a key.
fn check_id(check: &[u8]) -> String {
    hex::encode(&check[..8.min(check.len())])
}

/// Removes a file left at `path` by an earlier run, if there is one.
fn remove_leftover(path: &Path) -> Result<()> {
    if path.exists() {
        fs::remove_file(path).map_err(io_err(path))?;
    }
    Ok(())
}

/// The data key rows, each unwrapped with `old` and wrapped again under `new`.
fn rewrap(rows: Vec<DataKeyRow>, old: &MasterKey, new: &MasterKey) -> Result<Vec<DataKeyRow>> {
    let mut rewrapped = Vec::new();
    for row in rows {
        let key = old.unwrap_key(&row.id, &row.wrapped)?;
        rewrapped.push(DataKeyRow {
            wrapped: new.wrap(&row.id, &key)?,
            master_key_id: new.id(),
            ..row
        });
    }
    Ok(rewrapped)
}

/// The audit record of a change runseald's own command line made, now.
fn by_runseald(action: &'static str, names: Vec<String>) -> AuditRecord {
    AuditRecord::new(OffsetDateTime::now_utc(), "runseald", action, None, names)
}

/// A database made before the integrity MACs: creates the integrity key and computes every
/// row's MAC, once (a replica that loses the race loads the winner's key instead).
async fn upgrade_integrity(store: &dyn Store, master: &MasterKey) -> Result<IntegrityKey> {
    let key = IntegrityKey::generate();
    let now = OffsetDateTime::now_utc();
    let wrapped = DataKeyRow {
        id: INTEGRITY_KEY_ID.to_string(),
        master_key_id: master.id(),
        wrapped: master.wrap_integrity_key(&key)?,
        created_at: now,
    };
    let audit = AuditRecord::new(now, "runseald", "integrity.upgrade", None, vec![]);
    match store.upgrade_integrity(wrapped, &key, audit).await? {
        Some(rows) => {
            tracing::warn!(
                rows,
                "computed integrity MACs for a database made before them: every existing row is \
                 now authenticated as it is (changes made outside runseald before this start are \
                 not detected)"
            );
            Ok(key)
        }
        None => {
            let row = store
                .data_keys()
                .await?
                .into_iter()
                .find(|r| r.id == INTEGRITY_KEY_ID)
                .ok_or_else(|| StoreError::Corrupt("the integrity key vanished".into()))?;
            tracing::info!("another replica computed the integrity MACs; using its key");
            Ok(master.unwrap_integrity_key(&row.wrapped)?)
        }
    }
}

pub fn read_master_key(path: &Path) -> Result<MasterKey> {
    refuse_exposed(path, "the master key file", "600")?;
    let bytes = Zeroizing::new(fs::read(path).map_err(io_err(path))?);
    MasterKey::from_bytes(&bytes).map_err(|source| DataDirError::BadMasterKey {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a data dir or key file that anyone but its owner may use (judged by the ACL when it
/// has one, so a systemd credential, 0400 plus an ACL entry for the service, is accepted).
pub(crate) fn refuse_exposed(path: &Path, what: &'static str, fix: &'static str) -> Result<()> {
    match crate::file_mode::foreign_access(path).map_err(io_err(path))? {
        Some(who) => Err(DataDirError::Exposed {
            what,
            path: path.to_path_buf(),
            who,
            fix,
        }),
        None => Ok(()),
    }
}

/// Creates a new file with mode 0600 holding `contents`, fsynced. Fails if it exists.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    // The mode given at creation is subject to the umask; make sure it is exactly 0600.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(())
}

fn replace_file(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(io_err(to))?;
    if let Some(dir) = to.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}
