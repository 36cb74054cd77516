-- Integrity MACs (HMAC-SHA256 under the integrity key, src/integrity.rs) of every row that grants
-- something. The integrity key is stored wrapped in data_keys; runseald computes the MACs of the
-- existing rows once, at the first start after this migration. The columns have no default, so
-- a binary that does not know them fails loudly instead of writing unauthenticated rows.
ALTER TABLE api_keys ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::BYTEA;
ALTER TABLE api_keys ALTER COLUMN mac DROP DEFAULT;
ALTER TABLE runner_tokens ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::BYTEA;
ALTER TABLE runner_tokens ALTER COLUMN mac DROP DEFAULT;
ALTER TABLE runners ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::BYTEA;
ALTER TABLE runners ALTER COLUMN mac DROP DEFAULT;
ALTER TABLE environments ADD COLUMN mac BYTEA NOT NULL DEFAULT ''::BYTEA;
ALTER TABLE environments ALTER COLUMN mac DROP DEFAULT;
