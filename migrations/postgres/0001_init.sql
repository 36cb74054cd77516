-- runseal schema v1 (PostgreSQL). Values are stored sealed only; times are unix milliseconds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE environments (
    name       TEXT PRIMARY KEY,
    revision   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE secrets (
    environment TEXT NOT NULL REFERENCES environments (name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES data_keys (id),
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    value_len   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (environment, name)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    secret_hash  BYTEA NOT NULL,
    label        TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    action      TEXT NOT NULL,
    environment TEXT,
    names       TEXT NOT NULL
);

CREATE INDEX audit_by_environment ON audit (environment, id);
