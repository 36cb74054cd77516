-- Dashboard sessions (issue 14). The id is the SHA-256 of the session cookie's secret, never the
-- secret itself; the MAC (integrity key) covers the id, the key, and both times a session ends,
-- so a row written outside runseald grants nothing.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    mac BYTEA NOT NULL
);
CREATE INDEX web_sessions_by_key ON web_sessions (key_id);

-- Which front-end made a change: NULL for the gRPC APIs, 'dashboard' for the web dashboard.
ALTER TABLE audit ADD COLUMN via TEXT;
