-- Plugins' timers (capability `timers`, API 0.2.0; cap_panel::timers) and
-- the record of their firings. See the SQLite migration for the columns
-- and the reasons (leases, no projection, written without events).

CREATE TABLE plugin_timers (
    plugin_id   VARCHAR(128) NOT NULL,
    timer_key   VARCHAR(256) NOT NULL,
    arming      VARCHAR(64) NOT NULL,
    due_at      BIGINT NOT NULL,
    lease_owner VARCHAR(64) NULL,
    lease_until BIGINT NULL,
    missed_at   BIGINT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, timer_key),
    INDEX plugin_timers_due (due_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE plugin_timer_runs (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    plugin_id   VARCHAR(128) NOT NULL,
    timer_key   VARCHAR(256) NOT NULL,
    arming      VARCHAR(64) NOT NULL,
    due_at      BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome     VARCHAR(8) NOT NULL,
    reason      VARCHAR(2048) NULL,
    panel_id    VARCHAR(64) NOT NULL,
    INDEX plugin_timer_runs_plugin (plugin_id, id),
    INDEX plugin_timer_runs_started (started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
