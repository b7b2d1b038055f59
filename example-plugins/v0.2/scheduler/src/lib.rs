//! Schedules, as a plugin: each server's schedules run console commands,
//! power actions and backups at the times a cron expression names in a
//! time zone, with what Pterodactyl's schedules have (tasks in order with
//! offsets, "continue on failure", "only when the server is online", run
//! now, last and next run) and what the host's timers add (runs that
//! survive a Panel restart, a missed run run once or skipped as the
//! schedule says, never run twice by two Panels).
//!
//! The core knows no schedule. This plugin is built on what every plugin
//! of API 0.2.0 may ask for: its key-value store for the schedules and
//! their runs ([`store`], compare-and-swap for changes), timers for every
//! wake-up ([`run`]: the next cron time, "Run now", a task waiting for its
//! offset), the `panel` capability for what tasks do (`console.send`,
//! `power`, `backups.create`, `servers.read` to see whether the server
//! exists and runs), the real clock, and a server widget ([`widget`]).
//!
//! # Decisions
//!
//! - **Every run starts in a tick.** The cron time, "Run now" and each
//!   task's offset are timers; the host delivers each firing once, under
//!   a lease, whichever Panel delivers it. So two Panels never run a
//!   schedule twice, a Panel restart loses nothing (timers are rows), and
//!   a run's outcome is recorded by the host too
//!   (`/api/v1/plugins/scheduler/timer-runs`), failed runs with the
//!   plugin's reason.
//! - **The next cron time is armed before the run.** A run that fails, or
//!   a plugin that traps halfway, cannot stop the schedule; and rendering
//!   the widget re-arms an enabled schedule whose timer is missing.
//! - **Missed runs are decided from the tick's time.** A tick carries the
//!   time it was set for; delivered more than [`timing::GRACE_MS`] late
//!   (the Panel was down, the plugin quarantined or inactive), it is a
//!   missed run: run once, or recorded as skipped, as the schedule says.
//!   Many missed times are one tick, hence one run.
//! - **`schedule.*` are the Panel's server permissions, checked here.**
//!   The widget reads the viewer's permissions on the server
//!   (`server_permissions`), where owners hold `schedule.*` and subusers
//!   and API keys may be given them; see the Panel's
//!   `identity::permissions` docs for why they are built in rather than
//!   declared by this plugin.
//! - **A schedule does only what its author may.** Adding a task needs
//!   the permission of what it does (`control.console`, `control.start`,
//!   `control.stop`, `control.restart`, `backup.create`), so
//!   `schedule.update` does not let a subuser restart a server they may
//!   not restart. At run time the plugin acts as itself (`plugin:scheduler`
//!   in the audit log), through the before-hooks a user's request passes.
//! - **A schedule whose server is gone fails once and stops.** Its run
//!   records that the server no longer exists and the schedule is
//!   disabled: nothing can run there again.
//!
//! What is left out, and why: Pterodactyl's "is processing" guard (a
//! tick that comes while the previous run still waits for an offset starts
//! a second run; offsets are at most 15 minutes) and per-task editing
//! beyond add and remove (a task is removed and added again).

pub mod clock;
pub mod keys;
pub mod model;
pub mod run;
pub mod store;
pub mod timing;
pub mod widget;

use cap_plugin_sdk::hooks::{Event, EventKind, Hooks, Payload};
use cap_plugin_sdk::types::PluginError;
use cap_plugin_sdk::ui::{Action, ActionResult, RenderContext, Ui, UiTree};

/// The plugin. Stateless: schedules and runs live in the key-value store,
/// wake-ups in the host's timers.
#[derive(Debug, Default)]
pub struct Scheduler;

cap_plugin_sdk::export_plugin!(Scheduler: hooks, ui);

impl Hooks for Scheduler {
    /// A tick of one of the plugin's timers (nothing else is subscribed).
    fn after(&self, event: &Event) -> Result<(), PluginError> {
        if event.kind != EventKind::ScheduleTick {
            return Ok(());
        }
        let Payload::Schedule(timer) = &event.payload else {
            return Ok(());
        };
        run::on_tick(&timer.name, event.occurred_at_ms, clock::now_ms())
    }
}

impl Ui for Scheduler {
    fn render(&self, context: &RenderContext) -> Result<UiTree, PluginError> {
        widget::render(context)
    }

    fn handle_action(
        &self,
        context: &RenderContext,
        action: &Action,
    ) -> Result<ActionResult, PluginError> {
        widget::act(context, action)
    }
}
