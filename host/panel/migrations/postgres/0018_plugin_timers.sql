-- Plugins' timers (capability `timers`, API 0.2.0; cap_panel::timers) and
-- the record of their firings. See the SQLite migration for the columns
-- and the reasons (leases, no projection, written without events).

CREATE TABLE plugin_timers (
    plugin_id   VARCHAR(128) NOT NULL,
    timer_key   VARCHAR(256) NOT NULL,
    arming      VARCHAR(64) NOT NULL,
    due_at      BIGINT NOT NULL,
    lease_owner VARCHAR(64),
    lease_until BIGINT,
    missed_at   BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, timer_key)
);

CREATE INDEX plugin_timers_due ON plugin_timers (due_at);

CREATE TABLE plugin_timer_runs (
    id          VARCHAR(64) PRIMARY KEY,
    plugin_id   VARCHAR(128) NOT NULL,
    timer_key   VARCHAR(256) NOT NULL,
    arming      VARCHAR(64) NOT NULL,
    due_at      BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome     VARCHAR(8) NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason      VARCHAR(2048),
    panel_id    VARCHAR(64) NOT NULL
);

CREATE INDEX plugin_timer_runs_plugin ON plugin_timer_runs (plugin_id, id);
CREATE INDEX plugin_timer_runs_started ON plugin_timer_runs (started_at);
