-- Transfers of servers between nodes (cap_panel::servers::transfers).
--
-- `servers.transfer_id` names the transfer a server is in, if any: it is
-- part of the servers projection, rebuilt by replay from
-- `server.transfer.started`, `server.transferred` and
-- `server.transfer.failed`. While it is set the server is refused starts,
-- restarts, reinstalls, console commands and deletion.
--
-- `server_transfers` is the record of each transfer (as `backups` is of
-- backups): not a projection and without a foreign key to servers, so a
-- replay leaves it alone and a server's transfer history stays readable.
-- `allocations` is the JSON list of the target node's allocations taken at
-- the commit, primary first (`[{"ip": …, "port": …}]`); `stage` is how far
-- a running transfer got (`stopping`, `sending`, `committing`,
-- `starting`), and what it reached when it ended.

ALTER TABLE servers ADD COLUMN transfer_id TEXT
    CHECK (transfer_id IS NULL OR length(transfer_id) BETWEEN 1 AND 64);

CREATE TABLE server_transfers (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    server_id     TEXT NOT NULL CHECK (length(server_id) BETWEEN 1 AND 64),
    from_node     TEXT NOT NULL CHECK (length(from_node) BETWEEN 1 AND 64),
    to_node       TEXT NOT NULL CHECK (length(to_node) BETWEEN 1 AND 64),
    allocations   TEXT NOT NULL,
    was_running   INTEGER NOT NULL CHECK (was_running IN (0, 1)),
    state         TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    stage         TEXT NOT NULL CHECK (length(stage) BETWEEN 1 AND 16),
    failure       TEXT,
    sent_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (sent_bytes >= 0),
    total_bytes   INTEGER NOT NULL DEFAULT 0 CHECK (total_bytes >= 0),
    archive_bytes INTEGER,
    sha256        TEXT CHECK (length(sha256) = 64),
    started_by    TEXT,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER
) STRICT;

CREATE INDEX server_transfers_server ON server_transfers (server_id, started_at);
CREATE INDEX server_transfers_state ON server_transfers (state);
