//! Integration tests of the Panel: over real HTTP (a Panel started
//! in-process on 127.0.0.1:0, reqwest as the client), against real
//! SQLite, PostgreSQL and MySQL/MariaDB databases, and through the `cap`
//! binary itself. One test binary; one module per topic; the harness,
//! shared with the browser tests, is the `cap-panel-test-support` crate.

//! The local Stripe stub the paid flow uses is `cap_test_support::stripe`,
//! shared with the Marketplace server's tests.

use cap_panel_test_support as support;

mod accounts;
mod agents;
mod allocations;
mod api;
mod audit_log;
mod backups;
mod databases;
mod db;
mod eggs;
mod events_v1;
mod files;
mod hardening;
mod hook_events;
mod identity;
mod marketplace;
mod nodes;
mod oidc;
mod permissions;
mod plugins;
mod real_games;
mod replay;
mod schedules;
mod secrets;
mod servers;
mod settings;
mod sftp;
mod suspension;
mod timers;
mod totp;
mod transfers;
mod users;
mod web_ui;
