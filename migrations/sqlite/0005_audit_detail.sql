-- Audit rows carry the revision a change produced (or a snapshot served), the runner a snapshot
-- went to and how many values it held, and how many names a summarised batch named in all.
ALTER TABLE audit ADD COLUMN revision INTEGER;
ALTER TABLE audit ADD COLUMN runner_id TEXT;
ALTER TABLE audit ADD COLUMN value_count INTEGER;
ALTER TABLE audit ADD COLUMN names_total INTEGER;

CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX runner_tokens_by_creator ON runner_tokens (created_by);
CREATE INDEX runner_tokens_by_environment ON runner_tokens (environment, created_at);
