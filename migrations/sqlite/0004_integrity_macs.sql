-- Integrity MACs (HMAC-SHA256 under the integrity key, src/integrity.rs) of every row that grants
-- something. The integrity key is stored wrapped in data_keys; runseald computes the MACs of the
-- existing rows once, at the first start after this migration. The empty default never verifies:
-- a row written without a MAC grants nothing. (SQLite cannot add a NOT NULL column without a
-- default; PostgreSQL drops it.)
ALTER TABLE api_keys ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
ALTER TABLE runner_tokens ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
ALTER TABLE runners ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
ALTER TABLE environments ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
