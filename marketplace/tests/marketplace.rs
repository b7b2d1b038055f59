//! Integration tests of the Marketplace: verification against tampering,
//! resolution, the registry service end to end on SQLite and
//! PostgreSQL with real example-plugin packages, and paid plugins through
//! a local Stripe stub.

#[path = "marketplace/billing.rs"]
mod billing;
#[path = "marketplace/client.rs"]
mod client;
#[path = "marketplace/resolve.rs"]
mod resolve;
#[path = "marketplace/service.rs"]
mod service;
#[path = "marketplace/stripe_stub.rs"]
mod stripe_stub;
#[path = "marketplace/support.rs"]
mod support;
#[path = "marketplace/verify.rs"]
mod verify;
