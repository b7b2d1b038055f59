//! Integration tests of the registry service: the HTTP API end to end on
//! SQLite and PostgreSQL with real example-plugin packages, paid plugins
//! through a local Stripe stub, and the database's migrations (including
//! the adoption of databases from before numbered migrations).

mod billing;
mod migrations;
mod service;
