//! Integration tests of the Marketplace: verification against tampering,
//! resolution, and the registry service end to end on SQLite and
//! PostgreSQL with real example-plugin packages.

#[path = "marketplace/resolve.rs"]
mod resolve;
#[path = "marketplace/service.rs"]
mod service;
#[path = "marketplace/support.rs"]
mod support;
#[path = "marketplace/verify.rs"]
mod verify;
