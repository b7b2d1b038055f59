//! Integration tests of what a Panel links: verification against
//! tampering, resolution, and the client against misbehaving servers. The
//! registry service's own tests live with it, in
//! `marketplace/server/tests`.

mod client;
mod resolve;
mod support;
mod verify;
