-- Runner tokens, runner starts, and per-secret exposure (NULL: the server default applies).
ALTER TABLE secrets ADD COLUMN exposed BOOLEAN;

CREATE TABLE runner_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    environment TEXT NOT NULL,
    only_names  TEXT,
    purpose     TEXT NOT NULL,
    uses_left   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX runner_tokens_by_expiry ON runner_tokens (expires_at);

CREATE TABLE runners (
    id            BIGSERIAL PRIMARY KEY,
    runner_id     TEXT NOT NULL,
    environment   TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    credential_id TEXT NOT NULL
);

CREATE INDEX runners_by_environment ON runners (environment, started_at);
CREATE INDEX runners_by_start ON runners (started_at);
