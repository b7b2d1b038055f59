-- A server's suspension: why, since when and by whom (see the SQLite
-- migration of the same number).

ALTER TABLE servers ADD COLUMN suspended_reason VARCHAR(512);
ALTER TABLE servers ADD COLUMN suspended_at BIGINT;
ALTER TABLE servers ADD COLUMN suspended_by VARCHAR(64);
ALTER TABLE servers ADD CONSTRAINT servers_suspension
    CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL));
