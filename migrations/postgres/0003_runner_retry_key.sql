-- SHA-256 of the random key an agent sends with every try of one start: a retry after a lost
-- answer is served again only to the holder of that key, not to anyone who learnt the runner id.
ALTER TABLE runners ADD COLUMN retry_hash BYTEA;
