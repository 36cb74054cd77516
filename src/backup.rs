//! `runseald backup` and `runseald restore`: a consistent copy of the embedded SQLite store in
//! one file, and a new data dir made from one.
//!
//! The copy is taken with SQLite's online backup API ([`crate::store::sqlite::backup_file`]), so
//! a running runseald keeps serving. The file holds the database exactly as stored: values
//! sealed, keys and tokens as hashes, no plaintext and no key material. It needs the master key
//! it was taken under, which is never in it: its header names that key's check value (public),
//! and a restore refuses any other key before it writes anything.
//!
//! The format, version 1:
//!
//! ```text
//! runseal-backup v1
//! master-key-id: <16 hex>          the first 8 bytes of the check value, as runseald logs it
//! master-key-check: <64 hex>       the check value the database stores
//! staged-master-key-check: <64 hex>  only while a rotation is staged: the new key's
//! created-at: <RFC 3339>
//! database-bytes: <N>
//! <empty line>
//! <N bytes: the SQLite database>
//! sha256: <64 hex>                 SHA-256 of every byte before this line
//! ```
//!
//! This module never reads a value and never prints key material: only paths, sizes and the
//! public check value ids.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::datadir::{self, DataDir, DataDirError};
use crate::seal::MasterKey;
use crate::store::StoreError;

const MAGIC: &str = "runseal-backup v1";
const MAGIC_PREFIX: &str = "runseal-backup v";
/// The header is a few short lines; anything longer is not a runseal backup.
const MAX_HEADER: usize = 4096;
/// `sha256: ` + 64 hex digits + `\n`.
const TRAILER_LEN: u64 = 8 + 64 + 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("runseald backup copies the embedded SQLite store; for PostgreSQL (--database-url) use `pg_dump --format=custom` and `pg_restore` (README: Backups), and keep the master key apart from the dump")]
    Postgres,
    #[error("restore writes the embedded SQLite store only; for PostgreSQL (--database-url) use `pg_restore` on an empty database (README: Backups)")]
    RestorePostgres,
    #[error("there is no database at {0}: is --data-dir right? (runseald backup copies an initialised data dir)")]
    NoDatabase(PathBuf),
    #[error("the database {0} is not initialised: there is nothing to back up")]
    NotInitialized(PathBuf),
    #[error("the directory of --to {0} does not exist: create it first or fix the path")]
    NoTargetDir(PathBuf),
    #[error("--to {0} exists and is not a runseal backup: refusing to replace it")]
    TargetNotBackup(PathBuf),
    #[error("{0} is not a runseal backup (it does not start with `{MAGIC}`)")]
    Foreign(PathBuf),
    #[error("{path} is a runseal backup of format {found}: this runseald reads `{MAGIC}` only")]
    Version { path: PathBuf, found: String },
    #[error("{path} has a broken header: {what}")]
    Header { path: PathBuf, what: String },
    #[error("{path} is truncated: its header promises {expected} bytes, the file holds {found}; nothing was restored")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} is corrupt: {what}; nothing was restored")]
    Corrupt { path: PathBuf, what: String },
    #[error("the data dir {dir} already holds a database ({file}): restore writes a new data dir only; give an empty or new --data-dir")]
    HoldsDatabase { dir: PathBuf, file: PathBuf },
    #[error("the master key file {path} is missing: this backup needs the master key whose check value id is {needed} (give it with --master-key-file)")]
    KeyMissing { path: PathBuf, needed: String },
    #[error("the master key in {path} does not match the backup: its check value id is {found}, the backup's is {needed}; give the master key the backup was taken under (nothing was restored)")]
    KeyMismatch {
        path: PathBuf,
        found: String,
        needed: String,
    },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |err| BackupError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// What a backup holds, from its header.
#[derive(Debug, Clone)]
pub struct Header {
    pub master_key_check: Vec<u8>,
    /// The new key's check value, when the backup was taken while a rotation was staged.
    pub staged_master_key_check: Option<Vec<u8>>,
    pub created_at: String,
    pub database_bytes: u64,
    /// Bytes of the header itself (up to and including its empty line).
    len: u64,
}

impl Header {
    /// The public id of the master key the backup needs (as `runseald` logs it).
    pub fn master_key_id(&self) -> String {
        hex::encode(&self.master_key_check[..8.min(self.master_key_check.len())])
    }

    /// The key ids a restore accepts, for messages: `ID`, or `ID (or the staged new key ID)`.
    fn needed(&self) -> String {
        match &self.staged_master_key_check {
            Some(s) => format!(
                "{} (or the staged new key {})",
                self.master_key_id(),
                hex::encode(&s[..8.min(s.len())])
            ),
            None => self.master_key_id(),
        }
    }

    fn render(
        check: &[u8],
        staged: Option<&[u8]>,
        created_at: &str,
        database_bytes: u64,
    ) -> String {
        let staged = staged
            .map(|s| format!("staged-master-key-check: {}\n", hex::encode(s)))
            .unwrap_or_default();
        format!(
            "{MAGIC}\nmaster-key-id: {}\nmaster-key-check: {}\n{staged}created-at: {created_at}\ndatabase-bytes: {database_bytes}\n\n",
            hex::encode(&check[..8.min(check.len())]),
            hex::encode(check),
        )
    }
}

/// A file that is removed when dropped, unless kept.
struct Temp(Option<PathBuf>);

impl Temp {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// A sibling of `path` for a temporary file: `.NAME.PID.SUFFIX`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{suffix}", std::process::id()))
}

fn new_private(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    // The mode given at creation is subject to the umask; make sure it is exactly 0600.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(f)
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub header: Header,
    pub file_bytes: u64,
}

/// `runseald backup`: a consistent copy of `dir`'s SQLite database (live or not) written
/// atomically to `to` (mode 0600). An existing `to` is replaced only if it is a runseal backup.
pub fn backup(dir: &DataDir, postgres: bool, to: &Path) -> Result<BackupReport> {
    if postgres {
        return Err(BackupError::Postgres);
    }
    let db = dir.database_path();
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db));
    }
    let to_dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !to_dir.is_dir() {
        return Err(BackupError::NoTargetDir(to.to_path_buf()));
    }
    if to.exists() && !starts_as_backup(to)? {
        return Err(BackupError::TargetNotBackup(to.to_path_buf()));
    }
    let copy_path = sibling(to, "db.tmp");
    drop(new_private(&copy_path)?);
    let copy = Temp(Some(copy_path.clone()));
    let checks = crate::store::sqlite::backup_file(&db, &copy_path)?
        .ok_or_else(|| BackupError::NotInitialized(db.clone()))?;
    let database_bytes = fs::metadata(&copy_path).map_err(io_err(&copy_path))?.len();
    let created_at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let header_text = Header::render(
        &checks.current,
        checks.staged.as_deref(),
        &created_at,
        database_bytes,
    );

    let out_path = sibling(to, "tmp");
    let mut out = new_private(&out_path)?;
    let out_guard = Temp(Some(out_path.clone()));
    let mut hasher = Sha256::new();
    hasher.update(header_text.as_bytes());
    out.write_all(header_text.as_bytes())
        .map_err(io_err(&out_path))?;
    let mut src = File::open(&copy_path).map_err(io_err(&copy_path))?;
    let copied = copy_hashing(&mut src, &mut out, &mut hasher, &copy_path, &out_path)?;
    if copied != database_bytes {
        return Err(BackupError::Corrupt {
            path: copy_path.clone(),
            what: format!(
                "the copy changed while it was written ({copied} of {database_bytes} bytes)"
            ),
        });
    }
    let trailer = format!("sha256: {}\n", hex::encode(hasher.finalize()));
    out.write_all(trailer.as_bytes())
        .map_err(io_err(&out_path))?;
    out.sync_all().map_err(io_err(&out_path))?;
    drop(out);
    fs::rename(&out_path, to).map_err(io_err(to))?;
    out_guard.keep();
    sync_parent(to)?;
    drop(copy);
    let header = Header {
        master_key_check: checks.current,
        staged_master_key_check: checks.staged,
        created_at,
        database_bytes,
        len: header_text.len() as u64,
    };
    let file_bytes = header.len + database_bytes + TRAILER_LEN;
    Ok(BackupReport { header, file_bytes })
}

/// Copies all of `src` into `dst`, hashing it; returns the bytes copied.
fn copy_hashing(
    src: &mut impl Read,
    dst: &mut impl Write,
    hasher: &mut Sha256,
    src_path: &Path,
    dst_path: &Path,
) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io_err(src_path))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io_err(dst_path))?;
        total += n as u64;
    }
}

fn starts_as_backup(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut head = [0u8; MAGIC_PREFIX.len()];
    match f.read_exact(&mut head) {
        Ok(()) => Ok(head == MAGIC_PREFIX.as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads and checks the header of the backup at `path`, then the whole file against its
/// checksum. Writes nothing.
pub fn check_file(path: &Path) -> Result<Header> {
    let header = read_header(path)?;
    let found = fs::metadata(path).map_err(io_err(path))?.len();
    let expected = header.len + header.database_bytes + TRAILER_LEN;
    if found < expected {
        return Err(BackupError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "{} bytes follow the end its header promises",
                found - expected
            ),
        });
    }
    let mut f = File::open(path).map_err(io_err(path))?;
    digest_matches(&mut f, &header, path, &mut io::sink())?;
    Ok(header)
}

/// Hashes the header and database of an open backup (from its start), copying the database
/// bytes into `db_out`, and compares the trailer.
fn digest_matches(
    f: &mut File,
    header: &Header,
    path: &Path,
    db_out: &mut impl Write,
) -> Result<()> {
    let mut hasher = Sha256::new();
    let mut head = vec![0u8; header.len as usize];
    f.read_exact(&mut head).map_err(io_err(path))?;
    hasher.update(&head);
    let mut db = Read::by_ref(f).take(header.database_bytes);
    let copied = copy_hashing(&mut db, db_out, &mut hasher, path, path)?;
    if copied != header.database_bytes {
        return Err(BackupError::Truncated {
            path: path.to_path_buf(),
            expected: header.len + header.database_bytes + TRAILER_LEN,
            found: header.len + copied,
        });
    }
    let mut trailer = Vec::new();
    f.take(TRAILER_LEN + 1)
        .read_to_end(&mut trailer)
        .map_err(io_err(path))?;
    let want = format!("sha256: {}\n", hex::encode(hasher.finalize()));
    if trailer != want.as_bytes() {
        return Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            what: "its SHA-256 does not match its contents (damaged in storage or transfer)".into(),
        });
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<Header> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::new(f.take(MAX_HEADER as u64));
    let bad = |what: &str| BackupError::Header {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let mut len = 0u64;
    let mut line = Vec::new();
    let mut next_line = |line: &mut Vec<u8>| -> Result<bool> {
        line.clear();
        let n = reader.read_until(b'\n', line).map_err(io_err(path))?;
        len += n as u64;
        Ok(n > 0 && line.last() == Some(&b'\n'))
    };
    let complete = next_line(&mut line)?;
    let first = String::from_utf8_lossy(&line);
    let first = first.trim_end_matches('\n');
    if !complete || first != MAGIC {
        if let Some(v) = first.strip_prefix(MAGIC_PREFIX) {
            if complete && !v.is_empty() && v.len() < 16 {
                return Err(BackupError::Version {
                    path: path.to_path_buf(),
                    found: format!("v{v}"),
                });
            }
        }
        return Err(BackupError::Foreign(path.to_path_buf()));
    }
    // A check value field: 64 hex digits.
    let check_value = |key: &str, value: &str| {
        hex::decode(value)
            .ok()
            .filter(|v| v.len() == 32)
            .ok_or_else(|| bad(&format!("{key} is not 64 hex digits")))
    };
    let (mut check, mut id, mut created_at, mut bytes) = (None, None, None, None);
    let mut staged = None;
    loop {
        if !next_line(&mut line)? {
            return Err(bad("it ends before the empty line that closes the header"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad("a header line is not UTF-8"))?;
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            break;
        }
        let (key, value) = text
            .split_once(": ")
            .ok_or_else(|| bad("a header line is not `key: value`"))?;
        match key {
            "master-key-id" => id = Some(value.to_string()),
            "master-key-check" => check = Some(check_value(key, value)?),
            "staged-master-key-check" => staged = Some(check_value(key, value)?),
            "created-at" => created_at = Some(value.to_string()),
            "database-bytes" => {
                bytes = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad("database-bytes is not a number"))?,
                )
            }
            _ => {} // Later fields a newer runseald may add; v1 readers skip them.
        }
    }
    let check = check.ok_or_else(|| bad("it has no master-key-check"))?;
    let bytes = bytes.ok_or_else(|| bad("it has no database-bytes"))?;
    let header = Header {
        master_key_check: check,
        staged_master_key_check: staged,
        created_at: created_at.unwrap_or_default(),
        database_bytes: bytes,
        len,
    };
    if id.is_some_and(|id| id != header.master_key_id()) {
        return Err(bad("master-key-id does not match master-key-check"));
    }
    Ok(header)
}

/// `runseald restore`: checks the backup at `from` and the master key, then writes `dir`'s
/// database from it. Refuses a data dir that already holds a database; on any refusal or
/// failure nothing is left behind (a data dir this call created is removed again).
pub fn restore(from: &Path, dir: &DataDir, postgres: bool) -> Result<Header> {
    if postgres {
        return Err(BackupError::RestorePostgres);
    }
    let header = check_file(from)?;
    let root = dir.root().to_path_buf();
    let db = dir.database_path();
    for file in [db.clone(), suffixed(&db, "-wal"), suffixed(&db, "-shm")] {
        if fs::symlink_metadata(&file).is_ok() {
            return Err(BackupError::HoldsDatabase { dir: root, file });
        }
    }
    let key_path = dir.master_key_path().to_path_buf();
    if !key_path.exists() {
        return Err(BackupError::KeyMissing {
            path: key_path,
            needed: header.needed(),
        });
    }
    let master = datadir::read_master_key(&key_path)?;
    let staged_key = match &header.staged_master_key_check {
        _ if master.matches_check_value(&header.master_key_check) => false,
        Some(staged) if master.matches_check_value(staged) => true,
        _ => {
            return Err(BackupError::KeyMismatch {
                path: key_path,
                found: master.id(),
                needed: header.needed(),
            })
        }
    };

    let created_root = !root.exists();
    if !created_root {
        datadir::refuse_exposed(&root, "the data dir", "700")?;
    }
    if created_root {
        let parent = match root.parent() {
            Some(p) if p.as_os_str().is_empty() => Path::new("."),
            Some(p) => p,
            None => Path::new("/"),
        };
        if !parent.is_dir() {
            return Err(DataDirError::NoParent(root).into());
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .map_err(io_err(&root))?;
    }
    let result = write_database(from, &header, &master, staged_key, &db);
    if result.is_err() && created_root {
        let _ = fs::remove_dir(&root);
    }
    result.map(|()| header)
}

fn write_database(
    from: &Path,
    header: &Header,
    master: &MasterKey,
    staged_key: bool,
    db: &Path,
) -> Result<()> {
    let tmp_path = sibling(db, "restore.tmp");
    let mut tmp = new_private(&tmp_path)?;
    let guard = Temp(Some(tmp_path.clone()));
    // The file is read again as it is copied: what is written is what the checksum covers.
    let mut f = File::open(from).map_err(io_err(from))?;
    digest_matches(&mut f, header, from, &mut tmp)?;
    tmp.sync_all().map_err(io_err(&tmp_path))?;
    drop(tmp);
    let corrupt = |what: String| BackupError::Corrupt {
        path: from.to_path_buf(),
        what,
    };
    let inspected = crate::store::sqlite::inspect_file(&tmp_path)
        .map_err(|e| corrupt(format!("its database does not open: {e}")))?;
    if inspected.check.as_deref() != Some(header.master_key_check.as_slice())
        || inspected.staged_check != header.staged_master_key_check
    {
        return Err(corrupt(
            "its database holds other master key check values than its header".into(),
        ));
    }
    let rows = if staged_key {
        &inspected.staged_keys
    } else {
        &inspected.data_keys
    };
    if rows.is_empty() {
        return Err(corrupt("its database holds no data keys".into()));
    }
    for row in rows {
        if master.unwrap_key(&row.id, &row.wrapped).is_err() {
            return Err(corrupt(format!(
                "its data key {} does not open with the matching master key",
                row.id
            )));
        }
    }
    fs::rename(&tmp_path, db).map_err(io_err(db))?;
    guard.keep();
    sync_parent(db)?;
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn sample(db: &[u8]) -> Vec<u8> {
        let check = [7u8; 32];
        let mut out =
            Header::render(&check, None, "2026-01-01T00:00:00Z", db.len() as u64).into_bytes();
        out.extend_from_slice(db);
        let digest = hex::encode(Sha256::digest(&out));
        out.extend_from_slice(format!("sha256: {digest}\n").as_bytes());
        out
    }

    #[test]
    fn a_well_formed_file_passes_and_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b", &sample(b"database bytes"));
        let h = check_file(&p).unwrap();
        assert_eq!(h.database_bytes, 14);
        assert_eq!(h.master_key_id(), "0707070707070707");
    }

    #[test]
    fn foreign_truncated_corrupt_and_newer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = sample(b"database bytes, some more of them");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "foreign",
                b"SQLite format 3\0......".to_vec(),
                "is not a runseal backup",
            ),
            ("empty", vec![], "is not a runseal backup"),
            (
                "truncated",
                good[..good.len() - 30].to_vec(),
                "is truncated",
            ),
            ("header-only", good[..60].to_vec(), "broken header"),
            (
                "newer",
                b"runseal-backup v2\nx: y\n\n".to_vec(),
                "format v2",
            ),
            ("longer", [good.as_slice(), b"x"].concat(), "is corrupt"),
            (
                "flipped",
                {
                    let mut g = good.clone();
                    let i = g.len() - 80;
                    g[i] ^= 1;
                    g
                },
                "SHA-256 does not match",
            ),
        ];
        for (name, bytes, needle) in cases {
            let p = write(dir.path(), name, &bytes);
            let e = check_file(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }
}
