-- Secret history (issue 16). Every value a name was set to is kept as a numbered version, sealed
-- as it was stored (its own AAD binding: environment, name, data key), for the retention
-- (`[limits] versions_kept`). The MAC (integrity key) covers the environment, name, version
-- number, the sealed bytes and who wrote it, so a version written or renumbered outside runseald
-- is never served. Which version is current is the one whose nonce the current value carries.
CREATE TABLE secret_versions (
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES data_keys (id),
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    value_len   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    mac         BYTEA NOT NULL,
    PRIMARY KEY (environment, name, version)
);

-- The last version number handed out per name: version numbers are never reused, also across
-- an unset and a later set, or a purge.
CREATE TABLE secret_counters (
    environment  TEXT NOT NULL,
    name         TEXT NOT NULL,
    last_version BIGINT NOT NULL,
    PRIMARY KEY (environment, name)
);

-- The change feed (WatchEnvironments): one row per revision of an environment, in revision
-- order, with every name the change touched (never a value). Deleted with its environment, so
-- a later environment of the same name starts a new feed.
CREATE TABLE changes (
    environment TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    action      TEXT NOT NULL,
    names       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    PRIMARY KEY (environment, revision)
);
CREATE INDEX changes_by_time ON changes (at);
