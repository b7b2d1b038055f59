//! Host bindings, one module per supported WIT API version.
//!
//! The newest version's types are the runtime's public data model
//! ([`crate::api`]). When a new API version is released its bindings get a
//! module of their own and older versions convert into the newest types, so
//! the Panel and Agent only ever see one set of types.

/// Bindings for `ctrl-alt-play:plugin@0.1.0`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin/since_v0.1.0",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}
