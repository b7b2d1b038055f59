-- Plugins' timers (capability `timers`, API 0.2.0; cap_panel::timers) and
-- the record of their firings.
--
-- plugin_timers holds one armed timer per (plugin, key): `arming` is a new
-- id each time the plugin sets the key, so a delivery that finds the key
-- set again meanwhile leaves the new arming alone. `due_at`, `lease_until`
-- and `missed_at` are microseconds since the Unix epoch. A Panel delivers
-- a due timer only after taking its lease (`lease_owner`, `lease_until`)
-- with one conditional UPDATE, so of several Panels on this database one
-- delivers each firing; a lease that outlives its Panel expires.
-- `missed_at` says when a firing the plugin could not take (inactive,
-- quarantined) was recorded as failed; the timer then waits for the
-- plugin and is delivered late, once.
--
-- plugin_timer_runs records every firing's outcome: `ok`, or `failed` with
-- the reason. `panel_id` is the lease owner that delivered or recorded it.
--
-- Neither table is a projection that replay rebuilds; they are the
-- plugins' own scheduling data (like plugin_kv) and are written without
-- events. Their rows outlive an uninstall (as plugin_kv's do), so a
-- reinstalled plugin finds its timers.

CREATE TABLE plugin_timers (
    plugin_id   TEXT NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 128),
    timer_key   TEXT NOT NULL CHECK (length(timer_key) BETWEEN 1 AND 256),
    arming      TEXT NOT NULL CHECK (length(arming) BETWEEN 1 AND 64),
    due_at      INTEGER NOT NULL,
    lease_owner TEXT CHECK (length(lease_owner) BETWEEN 1 AND 64),
    lease_until INTEGER,
    missed_at   INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (plugin_id, timer_key)
) STRICT;

CREATE INDEX plugin_timers_due ON plugin_timers (due_at);

CREATE TABLE plugin_timer_runs (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    plugin_id   TEXT NOT NULL CHECK (length(plugin_id) BETWEEN 1 AND 128),
    timer_key   TEXT NOT NULL CHECK (length(timer_key) BETWEEN 1 AND 256),
    arming      TEXT NOT NULL CHECK (length(arming) BETWEEN 1 AND 64),
    due_at      INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason      TEXT CHECK (length(reason) <= 2048),
    panel_id    TEXT NOT NULL CHECK (length(panel_id) BETWEEN 1 AND 64)
) STRICT;

CREATE INDEX plugin_timer_runs_plugin ON plugin_timer_runs (plugin_id, id);
CREATE INDEX plugin_timer_runs_started ON plugin_timer_runs (started_at);
