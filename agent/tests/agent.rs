//! Integration and end-to-end tests of the Agent with real processes (the
//! `cap-standin-game` stand-in), the real `test-game` plugin in the sandbox
//! and in-test HTTP/WebSocket servers standing in for the Panel.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod agent {
    pub(crate) mod containers;
    pub(crate) mod install;
    pub(crate) mod isolation;
    pub(crate) mod lifecycle;
    pub(crate) mod link;
    pub(crate) mod real_games;
    pub(crate) mod support;
}
