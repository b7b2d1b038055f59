-- A server's suspension: why, since when and by whom (see the SQLite
-- migration of the same number).

ALTER TABLE servers
    ADD COLUMN suspended_reason VARCHAR(512) NULL,
    ADD COLUMN suspended_at     BIGINT NULL,
    ADD COLUMN suspended_by     VARCHAR(64) NULL,
    ADD CONSTRAINT servers_suspension CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL));
