-- A plugin's quarantine outlives a restart: the reason and time (microseconds
-- since the Unix epoch) the runtime quarantined it, both NULL when it is not
-- quarantined. Written with the plugin.quarantined / plugin.released events.

ALTER TABLE plugins ADD COLUMN quarantine_reason VARCHAR(2048);
ALTER TABLE plugins ADD COLUMN quarantined_at BIGINT;
