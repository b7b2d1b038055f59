//! Subcommand implementations.

pub(crate) mod plugin;
