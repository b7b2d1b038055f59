//! The plugins `cap` carries, by id, in install order. Each id is a
//! directory of `example-plugins/`. `build.rs` includes this file to know
//! what to pack, and `BundledPlugin` names each entry by its position, so
//! the two cannot disagree.

/// The bundled plugins' ids, in install order.
pub(crate) const IDS: [&str; 6] = [
    "local-password",
    "minecraft-paper",
    "test-game",
    "quota-guard",
    "discord-webhook",
    "player-list",
];
