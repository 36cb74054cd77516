//! `runseald migrate --from sqlite:PATH --to postgres://…`: copies every table as it is (sealed
//! values stay sealed: the same master key opens them on the other side), in one PostgreSQL
//! transaction, refusing a target that already holds data.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::rules::Backend;
use super::sql::{Arg, Mode, Tx, Value};
use super::{DatabaseUrl, PostgresStore, Result, SqliteStore, Store, StoreError};

/// The tables in dependency order, each with its columns. A column that may be NULL names the
/// type of its NULL (`:t` text, `:b` bytes, `:o` boolean; integer otherwise): PostgreSQL types
/// every parameter.
const TABLES: &[(&str, &str)] = &[
    ("meta", "key value"),
    ("data_keys", "id master_key_id wrapped created_at"),
    ("staged_wrappings", "id master_key_id wrapped created_at"),
    ("environments", "name revision created_at mac"),
    ("secrets", "environment name key_id nonce ciphertext value_len created_at updated_at exposed:o"),
    ("api_keys", "id secret_hash label scopes created_at last_used_at revoked_at mac"),
    ("audit", "id at key_id action environment:t names revision runner_id:t value_count names_total via:t"),
    (
        "runner_tokens",
        "id secret_hash environment only_names:t purpose uses_left expires_at created_at created_by \
         revoked_at mac",
    ),
    (
        "runners",
        "id runner_id environment revision started_at credential_id retry_hash:b mac received:t",
    ),
    (
        "secret_versions",
        "environment name version key_id nonce ciphertext value_len created_at created_by mac",
    ),
    ("secret_counters", "environment name last_version"),
    ("changes", "environment revision action names at key_id"),
    ("web_sessions", "id key_id created_at last_seen_at expires_at mac"),
    ("name_revisions", "environment name revision"),
];

/// What was copied, per table.
pub type Report = Vec<(&'static str, u64)>;

pub async fn sqlite_to_postgres(from: &Path, to: &DatabaseUrl) -> Result<Report> {
    if !from.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} does not exist",
            from.display()
        )));
    }
    let source = SqliteStore::open(from).await?;
    let target = PostgresStore::open(to).await?;
    let report = copy(&source.backend, &target.backend).await;
    source.close().await;
    target.close().await;
    report
}

/// A value read from SQLite as an argument for PostgreSQL, in a column of `kind`.
fn arg<'a>(v: &'a Value, kind: Option<&str>) -> Arg<'a> {
    match (v, kind) {
        (Value::Null, Some("t")) => Arg::Text(None),
        (Value::Null, Some("b")) => Arg::Blob(None),
        (v, kind) => v.as_arg(kind == Some("o")),
    }
}

async fn copy(from: &impl Backend, to: &impl Backend) -> Result<Report> {
    let mut tx = to.begin(Mode::Write).await?;
    let lock = "LOCK TABLE meta, environments, secrets, api_keys IN EXCLUSIVE MODE";
    tx.exec(lock, &[]).await?;
    for (table, _) in TABLES {
        let n = tx
            .row(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await?;
        let n = n.map(|r| r.int(0)).transpose()?.unwrap_or(0);
        if n > 0 {
            return Err(StoreError::Corrupt(format!(
                "the target database is not empty (table {table} has {n} rows): migrate only into a new database"
            )));
        }
    }
    // One read transaction on the source: a consistent copy even if a server still uses it.
    let mut source = from.begin(Mode::Snapshot).await?;
    let mut report = Vec::new();
    for (table, columns) in TABLES {
        let total = copy_table(&mut *source, &mut *tx, table, columns).await?;
        report.push((*table, total));
    }
    for table in ["audit", "runners"] {
        tx.exec(
            &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"),
            &[],
        )
        .await?;
    }
    tx.commit().await?;
    source.commit().await?;
    Ok(report)
}

/// Copies one table, showing progress on a terminal; how many rows.
async fn copy_table(from: &mut dyn Tx, to: &mut dyn Tx, table: &str, columns: &str) -> Result<u64> {
    let (names, kinds): (Vec<&str>, Vec<Option<&str>>) = columns
        .split_whitespace()
        .map(|c| c.split_once(':').map_or((c, None), |(n, k)| (n, Some(k))))
        .unzip();
    let cols = names.join(", ");
    let rows = from
        .rows(&format!("SELECT {cols} FROM {table}"), &[])
        .await?;
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({cols}) VALUES ({})",
        placeholders.join(", ")
    );
    let tty = std::io::stderr().is_terminal();
    let total = rows.len();
    for (i, row) in rows.iter().enumerate() {
        let args: Vec<Arg<'_>> = row.0.iter().zip(&kinds).map(|(v, k)| arg(v, *k)).collect();
        to.exec(&insert, &args).await?;
        if tty && (i % 100 == 0 || i + 1 == total) {
            eprint!("\r{table}: {}/{total}", i + 1);
            let _ = std::io::stderr().flush();
        }
    }
    if tty {
        eprintln!("\r{table}: {total}/{total}");
    } else {
        eprintln!("{table}: {total} rows");
    }
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table and column of the SQLite schema is copied: a migration that adds one must
    /// add it here too, or `migrate` would silently leave it behind.
    #[tokio::test]
    async fn every_table_and_column_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runseal.db");
        SqliteStore::open(&path).await.unwrap().close().await;
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut copied: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        tables.sort();
        copied.sort();
        assert_eq!(
            tables, copied,
            "tables of the schema vs tables migrate copies"
        );
        for (table, columns) in TABLES {
            let mut schema: Vec<String> = c
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let mut listed: Vec<String> = columns
                .split_whitespace()
                .map(|c| c.split(':').next().unwrap().to_string())
                .collect();
            schema.sort();
            listed.sort();
            assert_eq!(schema, listed, "columns of {table}");
        }
    }
}
