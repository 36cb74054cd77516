-- Runner tokens, runner starts, and per-secret exposure (NULL: the server default applies).
ALTER TABLE secrets ADD COLUMN exposed INTEGER;

CREATE TABLE runner_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    environment TEXT NOT NULL,
    only_names  TEXT,
    purpose     TEXT NOT NULL,
    uses_left   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  INTEGER
);

CREATE INDEX runner_tokens_by_expiry ON runner_tokens (expires_at);

CREATE TABLE runners (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    runner_id     TEXT NOT NULL,
    environment   TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    credential_id TEXT NOT NULL
);

CREATE INDEX runners_by_environment ON runners (environment, started_at);
CREATE INDEX runners_by_start ON runners (started_at);
