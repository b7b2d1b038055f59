//! The plugins `cap` carries: compiled from `example-plugins/` (and its
//! API 0.2.0 workspace, `example-plugins/v0.2/`) for `wasm32-wasip2` when
//! `cap` is built (`build.rs`) and included here byte
//! for byte — `plugin.toml`, component and `assets/` of each — so that a
//! copied binary installs them without the source tree or cargo.
//!
//! `cap up` installs all of them on its first run; `cap panel` installs
//! only `local-password`, because the core checks no password itself and a
//! Panel nobody can sign in to is of no use. Being carried earns a plugin
//! nothing: [`cap_panel::bundled::ensure_installed`] packs the missing ones
//! with the writer `cap plugin pack` uses and hands the package to the
//! Panel's plugin manager, which reads and validates it like an upload; the
//! grant is what its manifest requests.
//!
//! The parts, not finished `.cap` files, are carried because packing needs
//! `cap-runtime`, which `build.rs` could only use as a build dependency
//! compiled a second time (see the crate doc); packing when installing
//! gives the very bytes `cap plugin pack` gives.

use cap_panel::bundled::Bundled;

mod ids;

/// The parts of one carried plugin.
#[derive(Debug, Clone, Copy)]
struct Parts {
    manifest: &'static [u8],
    component: &'static [u8],
    assets: &'static [(&'static str, &'static [u8])],
}

/// The carried plugins, in the order of [`ids::IDS`]: `include_bytes!` of
/// the copies `build.rs` made under `OUT_DIR/bundled/<id>/`.
const PARTS: [Parts; ids::IDS.len()] = include!(concat!(env!("OUT_DIR"), "/bundled/parts.rs"));

/// One bundled plugin; each is the entry of [`ids::IDS`] at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BundledPlugin {
    /// The password auth provider (argon2id, lockout, policy).
    LocalPassword,
    /// The Minecraft (Paper) game type.
    MinecraftPaper,
    /// The test game type driving `cap-standin-game`.
    TestGame,
    /// Per-user memory quota before-hook.
    QuotaGuard,
    /// Discord announcements after-hook; installed inactive, since it
    /// needs its `webhook-url` secret first.
    DiscordWebhook,
    /// The players on a server (from console events) as a server-page
    /// widget with a kick button.
    PlayerList,
    /// Pterodactyl and Pelican eggs imported as game types (the game
    /// catalogue), so that `cap up` runs eggs out of the box.
    EggBridge,
    /// Schedules (cron, time zone, tasks with offsets) on each server's
    /// page, run by the host's timers; removable like any plugin, which
    /// removes schedules from the Panel.
    Scheduler,
}

impl BundledPlugin {
    /// Every bundled plugin, in install order.
    pub(crate) const ALL: [BundledPlugin; ids::IDS.len()] = [
        BundledPlugin::LocalPassword,
        BundledPlugin::MinecraftPaper,
        BundledPlugin::TestGame,
        BundledPlugin::QuotaGuard,
        BundledPlugin::DiscordWebhook,
        BundledPlugin::PlayerList,
        BundledPlugin::EggBridge,
        BundledPlugin::Scheduler,
    ];

    /// Its plugin id, which is also its directory under `example-plugins/`
    /// or `example-plugins/v0.2/`.
    pub(crate) fn id(self) -> &'static str {
        ids::IDS[self as usize]
    }

    /// Whether it is activated on install (otherwise it waits for the
    /// admin to configure it).
    fn activate_on_install(self) -> bool {
        !matches!(self, BundledPlugin::DiscordWebhook)
    }

    /// What [`cap_panel::bundled::ensure_installed`] takes.
    pub(crate) fn bundled(self) -> Bundled<'static> {
        let parts = PARTS[self as usize];
        Bundled {
            id: self.id(),
            manifest: parts.manifest,
            component: parts.component,
            assets: parts.assets,
            activate_on_install: self.activate_on_install(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cap_runtime::Package;

    use super::*;

    #[test]
    fn each_bundled_plugin_is_the_build_list_entry_at_its_position() {
        assert_eq!(BundledPlugin::ALL.len(), ids::IDS.len());
        for (position, plugin) in BundledPlugin::ALL.into_iter().enumerate() {
            assert_eq!(plugin as usize, position, "{plugin:?}");
            assert_eq!(plugin.id(), ids::IDS[position]);
        }
    }

    #[test]
    fn every_carried_plugin_packs_into_a_valid_package_of_the_plugin_it_is_named_after() {
        for plugin in BundledPlugin::ALL {
            let bytes = plugin
                .bundled()
                .package()
                .unwrap_or_else(|e| panic!("{}: {e}", plugin.id()));
            let package = Package::read(&bytes, cap_panel::plugins::MAX_COMPONENT_BYTES)
                .unwrap_or_else(|e| panic!("{}: {e}", plugin.id()));
            assert_eq!(package.manifest.plugin.id, plugin.id());
        }
    }

    /// The carried parts are today's sources: packed, they give the bytes
    /// `cap plugin pack` gives for the example plugin.
    #[test]
    fn every_carried_plugin_packs_into_the_package_of_its_sources() {
        for plugin in BundledPlugin::ALL {
            let carried = plugin.bundled().package().expect("packs");
            assert!(
                carried == cap_e2e::package(plugin.id()),
                "{} differs from its sources",
                plugin.id()
            );
        }
    }
}
