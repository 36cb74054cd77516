-- Staleness by what a runner received (not by any revision of its environment).
--
-- `received`: the names a runner start got, as `=,A,B,` (it asked for exactly these: an
-- allow-list) or `*,A,B,` (every secret exposed by default at its revision). NULL for a start
-- recorded before this migration: those keep the rule "the revision moved". Not covered by the
-- runner row's MAC: it decides staleness only, which grants nothing.
ALTER TABLE runners ADD COLUMN received TEXT;

-- The revision of the latest change that touched each name of an environment (set, unset,
-- rollback, exposure, copy into, purge), written with the change-feed row of that revision.
-- Unlike `changes` it is not pruned with the audit log: a runner is stale when a name it got,
-- or would get now, was touched after its revision. It starts empty: only starts recorded
-- from now on carry names, and every change after them is recorded here.
CREATE TABLE name_revisions (
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    PRIMARY KEY (environment, name)
);
CREATE INDEX name_revisions_by_revision ON name_revisions (environment, revision);
