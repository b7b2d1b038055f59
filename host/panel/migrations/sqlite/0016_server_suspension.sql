-- A server's suspension (issue 18): why, since when (microseconds since the
-- Unix epoch) and by whom (a user id, or `plugin:<id>` for a plugin's
-- `panel.suspend-server`; NULL for the Panel itself). A server is
-- suspended if and only if suspended_at is set, and then it has a reason.
-- Rebuilt by replay from `server.suspended` and `server.unsuspended`.

ALTER TABLE servers ADD COLUMN suspended_reason TEXT
    CHECK (suspended_reason IS NULL OR length(suspended_reason) BETWEEN 1 AND 512);
ALTER TABLE servers ADD COLUMN suspended_at INTEGER
    CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL));
ALTER TABLE servers ADD COLUMN suspended_by TEXT
    CHECK (suspended_by IS NULL OR length(suspended_by) BETWEEN 1 AND 64);
