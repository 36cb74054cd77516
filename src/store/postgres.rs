//! The PostgreSQL backend, for several runseald replicas serving one fleet, on sqlx.
//!
//! The same schema as SQLite, applied by embedded migrations (sqlx takes an advisory lock, so
//! replicas starting together do not race). The rules and statements are
//! [`super::rules`]'; what keeps replicas apart is PostgreSQL's: writers of one environment
//! serialise on its row (every change bumps the revision first), so concurrent sets through
//! different replicas lose no update and never skip or repeat a revision; a runner token is
//! read `FOR UPDATE` before a use is taken, so a single-use token is redeemed once across all
//! replicas; reads that must agree with a revision run in one REPEATABLE READ transaction.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Column, PgConnection, Row as _, Transaction, TypeInfo};

use super::rules::{Backend, Db};
use super::sql::{Arg, Dialect, Mode, Row, Tx, Value};
use super::{DatabaseUrl, IntegrityCell, Result, SnapshotCache, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store (see the module documentation).
pub type PostgresStore = Db<Postgres>;

pub struct Postgres {
    pool: PgPool,
}

impl Db<Postgres> {
    /// Connects and applies the embedded migrations. The connect options (which hold the
    /// password) live only inside the pool, never in a value that prints itself.
    pub async fn open(url: &DatabaseUrl) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(url.pg_options()?)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Db {
            backend: Postgres { pool },
            snapshots: SnapshotCache::default(),
            integrity: Arc::new(IntegrityCell::default()),
        })
    }
}

enum PgTx {
    Tx(Transaction<'static, sqlx::Postgres>),
    Once(PoolConnection<sqlx::Postgres>),
}

impl PgTx {
    fn conn(&mut self) -> &mut PgConnection {
        match self {
            PgTx::Tx(tx) => tx,
            PgTx::Once(conn) => conn,
        }
    }
}

fn bind<'q>(sql: &'q str, args: &'q [Arg<'q>]) -> Query<'q, sqlx::Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), |q, a| match *a {
        Arg::Int(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::Blob(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
    })
}

/// A row's columns as [`Value`]s, by their PostgreSQL type.
fn values(r: &PgRow) -> Result<Row> {
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match c.type_info().name() {
            "INT2" => r
                .try_get::<Option<i16>, _>(i)?
                .map(|n| Value::Int(n.into())),
            "INT4" => r
                .try_get::<Option<i32>, _>(i)?
                .map(|n| Value::Int(n.into())),
            "INT8" => r.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            "BOOL" => r.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            "BYTEA" => r.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
            "TEXT" | "VARCHAR" | "NAME" => r.try_get::<Option<String>, _>(i)?.map(Value::Text),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "result column {} has type {other}, which the store does not read",
                    c.name()
                )))
            }
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

#[async_trait]
impl Tx for PgTx {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(bind(sql, args).execute(self.conn()).await?.rows_affected())
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let rows = bind(sql, args).fetch_all(self.conn()).await?;
        rows.iter().map(values).collect()
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        if let PgTx::Tx(tx) = *self {
            tx.commit().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Tx>> {
        let tx = match mode {
            Mode::Once => PgTx::Once(self.pool.acquire().await?),
            Mode::Write => PgTx::Tx(self.pool.begin().await?),
            Mode::Snapshot => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                PgTx::Tx(tx)
            }
        };
        Ok(Box::new(tx))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
