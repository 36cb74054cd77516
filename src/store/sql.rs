//! The one way the store speaks SQL: a transaction ([`Tx`]) that runs a statement with
//! [`Arg`]s and answers rows of [`Value`]s, and the [`Dialect`] table of what truly differs
//! between SQLite and PostgreSQL. Statements are written once, with `$1..$n` placeholders; a
//! backend translates them if it must. Nothing here knows a table.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{from_millis, Result, StoreError};

/// A statement argument, typed even when NULL (PostgreSQL types every parameter).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Bool(Option<bool>),
}

macro_rules! arg_from {
    ($($t:ty => $v:ident($e:expr)),* $(,)?) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from(x: $t) -> Self { Arg::$v(($e)(x)) }
        })*
    };
}

arg_from!(
    i64 => Int(Some),
    Option<i64> => Int(|x| x),
    &'a str => Text(Some),
    &'a String => Text(|s: &'a String| Some(s.as_str())),
    Option<&'a str> => Text(|x| x),
    &'a [u8] => Blob(Some),
    &'a Vec<u8> => Blob(|v: &'a Vec<u8>| Some(v.as_slice())),
    Option<&'a [u8]> => Blob(|x| x),
    Option<bool> => Bool(|x| x),
);

/// A column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl Value {
    /// The same value as an argument (`bool_col`: a SQLite integer that is a boolean).
    pub fn as_arg(&self, bool_col: bool) -> Arg<'_> {
        match self {
            Value::Null if bool_col => Arg::Bool(None),
            Value::Null => Arg::Int(None),
            Value::Int(i) if bool_col => Arg::Bool(Some(*i != 0)),
            Value::Int(i) => Arg::Int(Some(*i)),
            Value::Text(s) => Arg::Text(Some(s)),
            Value::Blob(b) => Arg::Blob(Some(b)),
            Value::Bool(b) => Arg::Bool(Some(*b)),
        }
    }
}

/// One result row, read by column position. A value of the wrong type is a clear
/// [`StoreError::Corrupt`] naming the column, never a panic.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn typed<T>(&self, i: usize, want: &str, f: impl Fn(&Value) -> Option<T>) -> Result<Option<T>> {
        match self.0.get(i) {
            None => Err(StoreError::Corrupt(format!("result column {i} is missing"))),
            Some(Value::Null) => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!("result column {i}: expected {want}, found {v:?}"))
            }),
        }
    }

    fn required<T>(&self, i: usize, v: Option<T>) -> Result<T> {
        v.ok_or_else(|| StoreError::Corrupt(format!("result column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.typed(i, "an integer", |v| match v {
            Value::Int(n) => Some(*n),
            _ => None,
        })
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        self.required(i, self.opt_int(i)?)
    }

    /// A non-negative integer (revisions, counts).
    pub fn uint(&self, i: usize) -> Result<u64> {
        Ok(self.int(i)?.max(0) as u64)
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.typed(i, "text", |v| match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        })
    }

    pub fn text(&self, i: usize) -> Result<String> {
        self.required(i, self.opt_text(i)?)
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        self.typed(i, "bytes", |v| match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        })
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.required(i, self.opt_blob(i)?)
    }

    /// A boolean: PostgreSQL's own, or SQLite's 0/1.
    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>> {
        self.typed(i, "a boolean", |v| match v {
            Value::Bool(b) => Some(*b),
            Value::Int(n) => Some(*n != 0),
            _ => None,
        })
    }

    /// A time stored as unix milliseconds.
    pub fn time(&self, i: usize) -> Result<OffsetDateTime> {
        self.int(i).map(from_millis)
    }

    pub fn opt_time(&self, i: usize) -> Result<Option<OffsetDateTime>> {
        Ok(self.opt_int(i)?.map(from_millis))
    }
}

/// The real differences between the two dialects, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What a writer locks against other replicas before it reads what it will change.
#[derive(Debug, Clone, Copy)]
pub enum Lock {
    /// First start: one replica initialises, the others wait and find it done.
    Meta,
    /// Key revocations serialise, so two admins revoking each other cannot both succeed.
    ApiKeys,
    /// The integrity upgrade: one replica at a time (taken before the "already done?" check).
    Upgrade,
    /// Then the tables it rewrites, in the order other writers take them (readers still read).
    UpgradeTables,
}

impl Dialect {
    /// Appended to a read whose row the transaction then changes. SQLite needs none: its
    /// write transactions begin IMMEDIATE, holding the one write lock throughout.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// True where the text `haystack` holds `needle` (both SQL expressions), case-sensitively
    /// (`LIKE` is not, in SQLite).
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }

    /// The statement that takes `lock`, if the dialect needs one (SQLite has one writer).
    pub fn lock(self, lock: Lock) -> Option<&'static str> {
        if self == Dialect::Sqlite {
            return None;
        }
        Some(match lock {
            Lock::Meta => "LOCK TABLE meta IN EXCLUSIVE MODE",
            Lock::ApiKeys => "LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE",
            // "runseal-ik" as a 64-bit advisory lock key (0x7275_6e73_6561_6c01).
            Lock::Upgrade => "SELECT pg_advisory_xact_lock(8247619734500109313)",
            Lock::UpgradeTables => {
                "LOCK TABLE data_keys, api_keys, runners, runner_tokens, environments, secrets \
                 IN EXCLUSIVE MODE"
            }
        })
    }
}

/// How a backend opens a [`Tx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A write transaction (SQLite: BEGIN IMMEDIATE).
    Write,
    /// A read-only transaction that sees one snapshot (PostgreSQL: REPEATABLE READ).
    Snapshot,
    /// One read statement (or a few independent ones), no transaction: a point read.
    Once,
}

/// An open transaction (or, in [`Mode::Once`], a connection). Dropped without
/// [`Tx::commit`], it rolls back.
#[async_trait]
pub trait Tx: Send {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;
    /// Runs a query; every row.
    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>>;
    /// Commits (for a write: returns once durable).
    async fn commit(self: Box<Self>) -> Result<()>;
}

impl dyn Tx + '_ {
    /// The first row, if any.
    pub async fn row(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }
}
