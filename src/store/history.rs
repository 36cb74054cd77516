//! The statements of a secret's history, of the change feed and of the latest revision that
//! touched each name (what decides stale runners), written once for both backends (called from
//! [`super::rules`] inside its transactions). Like `rules.rs`, this file never
//! names a backend.

use time::OffsetDateTime;

use super::sql::{Row, Tx};
use super::*;
use crate::integrity::{tampered, IntegrityKey, TABLE_SECRET_VERSIONS};
use crate::seal::Sealed;

pub(super) const VERSION_COLS: &str = "environment, name, version, key_id, nonce, ciphertext, \
     value_len, created_at, created_by, mac";

/// The sealed value in columns `at..at + 3` (data key, nonce, ciphertext).
fn sealed_at(r: &Row, at: usize) -> Result<Sealed> {
    Ok(Sealed {
        key_id: r.text(at)?,
        nonce: r.blob(at + 1)?,
        ciphertext: r.blob(at + 2)?,
    })
}

/// A [`VERSION_COLS`] row and its MAC.
pub(super) fn version_row(r: &Row) -> Result<(SecretVersion, Vec<u8>)> {
    let v = SecretVersion {
        environment: r.text(0)?,
        name: r.text(1)?,
        version: r.uint(2)?,
        sealed: sealed_at(r, 3)?,
        value_len: r.uint(6)?,
        created_at: r.time(7)?,
        created_by: r.text(8)?,
        current: false,
    };
    Ok((v, r.blob(9)?))
}

/// A [`VERSION_COLS`] row, its MAC checked against `key`.
pub(super) fn checked_version(key: &IntegrityKey, r: &Row) -> Result<SecretVersion> {
    let (v, mac) = version_row(r)?;
    if key.verify_version(&v, &mac) {
        Ok(v)
    } else {
        let id = format!("{}/{} version {}", v.environment, v.name, v.version);
        Err(tampered(TABLE_SECRET_VERSIONS, &id))
    }
}

/// Writes `v` (its number already taken) with its MAC.
async fn insert_version(tx: &mut dyn Tx, key: &IntegrityKey, v: &SecretVersion) -> Result<()> {
    let sql = format!(
        "INSERT INTO secret_versions ({VERSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10) ON CONFLICT (environment, name, version) DO NOTHING"
    );
    let mac = key.version_mac(v);
    let args = [
        (&v.environment).into(),
        (&v.name).into(),
        (v.version as i64).into(),
        (&v.sealed.key_id).into(),
        (&v.sealed.nonce).into(),
        (&v.sealed.ciphertext).into(),
        (v.value_len as i64).into(),
        to_millis(v.created_at).into(),
        (&v.created_by).into(),
        (&mac).into(),
    ];
    tx.exec(&sql, &args).await.map(drop)
}

/// Keeps `s`, just stored as the current value of its name, as that name's next version, and
/// drops the versions past the retention (`keep`, the new one included).
pub(super) async fn keep_version(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    environment: &str,
    s: &SealedSecret,
    audit: &AuditRecord,
    keep: usize,
) -> Result<()> {
    let sql = "INSERT INTO secret_counters (environment, name, last_version) VALUES ($1, $2, 1) \
               ON CONFLICT (environment, name) DO UPDATE \
               SET last_version = secret_counters.last_version + 1 RETURNING last_version";
    let row = tx.row(sql, &[environment.into(), (&s.name).into()]).await?;
    let version = row
        .ok_or_else(|| StoreError::Corrupt("the version counter returned no row".into()))?
        .uint(0)?;
    let v = SecretVersion {
        environment: environment.to_string(),
        name: s.name.clone(),
        version,
        sealed: s.sealed.clone(),
        value_len: s.value_len,
        created_at: audit.at,
        created_by: audit.key_id.clone(),
        current: true,
    };
    insert_version(tx, key, &v).await?;
    let oldest_kept = version.saturating_sub(keep.max(1) as u64 - 1);
    let sql = "DELETE FROM secret_versions WHERE environment = $1 AND name = $2 AND version < $3";
    let args = [
        environment.into(),
        (&s.name).into(),
        (oldest_kept as i64).into(),
    ];
    tx.exec(sql, &args).await.map(drop)
}

/// Records the change that produced `revision` of `environment` for the change feed, and as the
/// latest change of each name it touched.
pub(super) async fn record_change(
    tx: &mut dyn Tx,
    environment: &str,
    revision: u64,
    audit: &AuditRecord,
) -> Result<()> {
    let sql = "INSERT INTO changes (environment, revision, action, names, at, key_id) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    let names = audit.names.join(",");
    let args = [
        environment.into(),
        (revision as i64).into(),
        audit.action.into(),
        names.as_str().into(),
        to_millis(audit.at).into(),
        (&audit.key_id).into(),
    ];
    tx.exec(sql, &args).await?;
    // What decides which runner starts are stale: the latest revision that touched each name.
    let sql = "INSERT INTO name_revisions (environment, name, revision) VALUES ($1, $2, $3) \
               ON CONFLICT (environment, name) DO UPDATE SET revision = excluded.revision";
    for name in &audit.names {
        let args = [environment.into(), name.into(), (revision as i64).into()];
        tx.exec(sql, &args).await?;
    }
    Ok(())
}

/// The kept versions of one name, newest first, MACs checked; `current` marks the one whose
/// sealed bytes the current value carries (`current_nonce`).
pub(super) async fn versions_tx(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    environment: &str,
    name: &str,
    current_nonce: Option<&[u8]>,
) -> Result<Vec<SecretVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLS} FROM secret_versions WHERE environment = $1 AND name = $2 \
         ORDER BY version DESC"
    );
    let rows = tx.rows(&sql, &[environment.into(), name.into()]).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut found_current = false;
    for r in &rows {
        let mut v = checked_version(key, r)?;
        // Only the newest version carrying the current nonce is current.
        v.current = !found_current && current_nonce == Some(v.sealed.nonce.as_slice());
        found_current |= v.current;
        out.push(v);
    }
    Ok(out)
}

/// The nonce of `name`'s current value in `environment`, if it is set.
pub(super) async fn current_nonce(
    tx: &mut dyn Tx,
    environment: &str,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let sql = "SELECT nonce FROM secrets WHERE environment = $1 AND name = $2";
    let row = tx.row(sql, &[environment.into(), name.into()]).await?;
    row.map(|r| r.blob(0)).transpose()
}

/// The current values that have no version yet (set before history existed): each becomes its
/// name's version 1, by an unknown key at its last update.
pub(super) async fn backfill_tx(tx: &mut dyn Tx, key: &IntegrityKey) -> Result<u64> {
    let sql = "SELECT s.environment, s.name, s.key_id, s.nonce, s.ciphertext, s.value_len, \
               s.updated_at FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM secret_counters c \
               WHERE c.environment = s.environment AND c.name = s.name)";
    let rows = tx.rows(sql, &[]).await?;
    for r in &rows {
        let v = SecretVersion {
            environment: r.text(0)?,
            name: r.text(1)?,
            version: 1,
            sealed: sealed_at(r, 2)?,
            value_len: r.uint(5)?,
            created_at: r.time(6)?,
            created_by: String::new(),
            current: true,
        };
        let sql = "INSERT INTO secret_counters (environment, name, last_version) \
                   VALUES ($1, $2, 1) ON CONFLICT (environment, name) DO NOTHING";
        tx.exec(sql, &[(&v.environment).into(), (&v.name).into()])
            .await?;
        insert_version(tx, key, &v).await?;
    }
    Ok(rows.len() as u64)
}

/// A change row: environment, revision, action, names, time.
pub(super) fn change_row(r: &Row) -> Result<Change> {
    Ok(Change {
        environment: r.text(0)?,
        revision: r.uint(1)?,
        action: r.text(2)?,
        names: r
            .text(3)?
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        at: r.time(4)?,
    })
}

/// Drops the change-feed rows older than `before` (with the audit retention).
pub(super) async fn prune_changes(tx: &mut dyn Tx, before: OffsetDateTime) -> Result<u64> {
    let sql = "DELETE FROM changes WHERE at < $1";
    tx.exec(sql, &[to_millis(before).into()]).await
}
