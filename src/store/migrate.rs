//! `runseald migrate --from sqlite:PATH --to postgres://…`: copies every table as it is (sealed
//! values stay sealed: the same master key opens them on the other side), in one PostgreSQL
//! transaction, refusing a target that already holds data.

use std::io::{IsTerminal, Write};
use std::path::Path;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Column, Row, TypeInfo};

use super::{PostgresStore, Result, SqliteStore, StoreError};

/// The tables in dependency order, each with its columns.
const TABLES: &[(&str, &[&str])] = &[
    ("meta", &["key", "value"]),
    (
        "data_keys",
        &["id", "master_key_id", "wrapped", "created_at"],
    ),
    ("environments", &["name", "revision", "created_at", "mac"]),
    (
        "secrets",
        &[
            "environment",
            "name",
            "key_id",
            "nonce",
            "ciphertext",
            "value_len",
            "created_at",
            "updated_at",
            "exposed",
        ],
    ),
    (
        "api_keys",
        &[
            "id",
            "secret_hash",
            "label",
            "scopes",
            "created_at",
            "last_used_at",
            "revoked_at",
            "mac",
        ],
    ),
    (
        "audit",
        &[
            "id",
            "at",
            "key_id",
            "action",
            "environment",
            "names",
            "revision",
            "runner_id",
            "value_count",
            "names_total",
        ],
    ),
    (
        "runner_tokens",
        &[
            "id",
            "secret_hash",
            "environment",
            "only_names",
            "purpose",
            "uses_left",
            "expires_at",
            "created_at",
            "created_by",
            "revoked_at",
            "mac",
        ],
    ),
    (
        "runners",
        &[
            "id",
            "runner_id",
            "environment",
            "revision",
            "started_at",
            "credential_id",
            "retry_hash",
            "mac",
        ],
    ),
];

/// What was copied, per table.
pub type Report = Vec<(&'static str, u64)>;

pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<Report> {
    if !from.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} does not exist",
            from.display()
        )));
    }
    let source = SqliteStore::open(from).await?;
    let target = PostgresStore::open(to).await?;
    let report = copy(source.pool(), target.pool()).await;
    super::Store::close(&source).await;
    super::Store::close(&target).await;
    report
}

async fn copy(from: &SqlitePool, to: &PgPool) -> Result<Report> {
    let mut tx = to.begin().await?;
    sqlx::query("LOCK TABLE meta, environments, secrets, api_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    for (table, _) in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(StoreError::Corrupt(format!(
                "the target database is not empty (table {table} has {n} rows): migrate only into a new database"
            )));
        }
    }
    // One read transaction on the source: a consistent copy even if a server still uses it.
    let mut source = from.begin().await?;
    let tty = std::io::stderr().is_terminal();
    let mut report = Vec::new();
    for (table, columns) in TABLES {
        let cols = columns.join(", ");
        let rows = sqlx::query(&format!("SELECT {cols} FROM {table}"))
            .fetch_all(&mut *source)
            .await?;
        let placeholders = (1..=columns.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!("INSERT INTO {table} ({cols}) VALUES ({placeholders})");
        let total = rows.len();
        for (i, row) in rows.iter().enumerate() {
            let mut q = sqlx::query(&insert);
            for (c, name) in columns.iter().enumerate() {
                let col = &row.columns()[c];
                let ty = col.type_info().name().to_ascii_uppercase();
                q = if *name == "exposed" {
                    q.bind(row.try_get::<Option<bool>, _>(c)?)
                } else if ty == "BLOB" {
                    q.bind(row.try_get::<Option<Vec<u8>>, _>(c)?)
                } else if ty == "INTEGER" {
                    q.bind(row.try_get::<Option<i64>, _>(c)?)
                } else if ty == "NULL" {
                    q.bind(Option::<String>::None)
                } else {
                    q.bind(row.try_get::<Option<String>, _>(c)?)
                };
            }
            q.execute(&mut *tx).await?;
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
        report.push((*table, total as u64));
    }
    for table in ["audit", "runners"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    source.rollback().await?;
    Ok(report)
}
