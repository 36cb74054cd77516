-- A staged master key rotation (`runseald rotate-master-key --stage`): every data key, the
-- integrity key included, wrapped under the new master key as well, until `--finish` makes these
-- the only wrappings. The new key's check value is the meta row `staged_master_key_check`: while
-- both are stored, replicas holding either master key start.
CREATE TABLE staged_wrappings (
    id            TEXT PRIMARY KEY REFERENCES data_keys (id),
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);
