-- runseal schema v1 (SQLite). Values are stored sealed only; times are unix milliseconds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped       BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE environments (
    name       TEXT PRIMARY KEY,
    revision   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE secrets (
    environment TEXT NOT NULL REFERENCES environments (name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES data_keys (id),
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    value_len   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (environment, name)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    secret_hash  BLOB NOT NULL,
    label        TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    key_id      TEXT NOT NULL,
    action      TEXT NOT NULL,
    environment TEXT,
    names       TEXT NOT NULL
);

CREATE INDEX audit_by_environment ON audit (environment, id);
