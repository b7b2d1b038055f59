//! Integration tests of the Marketplace: verification against tampering,
//! resolution, and the registry service end to end on SQLite and
//! PostgreSQL with real example-plugin packages.

mod resolve;
mod service;
mod support;
mod verify;
