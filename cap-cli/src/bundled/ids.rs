//! The plugins `cap` carries, by id, in install order. Each id is a
//! directory of `example-plugins/` (API 0.1.0) or `example-plugins/v0.2/`
//! (API 0.2.0). `build.rs` includes this file to know
//! what to pack, and `BundledPlugin` names each entry by its position, so
//! the two cannot disagree.

/// The bundled plugins' ids, in install order.
pub(crate) const IDS: [&str; 8] = [
    "local-password",
    "minecraft-paper",
    "test-game",
    "quota-guard",
    "discord-webhook",
    "player-list",
    "egg-bridge",
    "scheduler",
];
