//! The `cap` binary end to end, run as a user runs it: one test binary with
//! a module per topic and [`support`] shared between them. Only this crate
//! sees `CARGO_BIN_EXE_cap`; tests elsewhere that run `cap` find it with
//! `cap_e2e::cap_binary`.

mod commands;
mod containers;
mod egg;
mod marketplace;
mod plugin;
mod self_contained;
mod support;
