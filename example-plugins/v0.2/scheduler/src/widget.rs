//! The `schedules` server widget: lists a server's schedules with their
//! tasks, last and next run and recent runs, and offers what the viewer
//! may do there.
//!
//! Every check reads the viewer's permissions **on this server** (the
//! render context's `server_permissions`: as its owner, a subuser, or an
//! administrator of every server), never those a role gives them
//! elsewhere:
//!
//! | Action | Needs |
//! | --- | --- |
//! | seeing the schedules | `schedule.read` |
//! | `create` | `schedule.create`, and the permission of its first task |
//! | `update:<id>`, `toggle:<id>`, `run:<id>` (run now), `remove-task:<id>` | `schedule.update` |
//! | `add-task:<id>` | `schedule.update`, and the permission of the task |
//! | `delete:<id>` | `schedule.delete` |
//!
//! A task's permission is what it does: `control.console` for a console
//! command, `control.start`, `control.stop` (stop, kill) or
//! `control.restart` for a power action, `backup.create` for a backup; a
//! schedule must not let someone do on the server what they may not do
//! themselves. The widget offers only what the viewer may do, and every
//! action checks again (an action can be sent without the widget: API
//! keys send `POST /api/v1/ui/contributions/scheduler/schedules/actions`).
//!
//! Forms send their fields by name: `name`, `cron`, `preset` (one of the
//! presets, or `custom` for `cron`), `time_zone`, `enabled` and
//! `only_when_online` (`true`/`false`), `missed` (`run once` or `skip`),
//! and for a task `task_kind` (`command`, `power`, `backup`, or `none`),
//! `task_value` (the command, the power action, the backup's name),
//! `task_offset` (seconds) and `task_continue` (`true`/`false`). A row
//! button of the tasks table sends the row's cells by column index.

use cap_plugin_sdk::types::{KeyValue, PluginError, lookup};
use cap_plugin_sdk::ui::{
    Action as UiAction, ActionResult, Button, Element, FieldKind, Form, FormField, RenderContext,
    Table, TableRow, Tone, TreeBuilder, UiTree,
};

use crate::model::{
    self, Action, CREATE, DELETE, Fields, READ, Refusal, Run, Schedule, Task, UPDATE,
};
use crate::store::refused;
use crate::timing::{self, MissedPolicy, PRESETS};
use crate::{clock, run, store};

/// The contribution's id.
pub const CONTRIBUTION: &str = "schedules";

/// The choices of the preset field; `custom` takes the cron field.
const CUSTOM: &str = "custom";

/// A schedule as the widget shows it.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The schedule.
    pub schedule: Schedule,
    /// Its recent runs, newest first.
    pub runs: Vec<Run>,
    /// When it runs next, for people; `None` when it does not.
    pub next: Option<String>,
}

/// The server the widget is shown for.
fn server_of(context: &RenderContext) -> Result<&str, PluginError> {
    if context.contribution != CONTRIBUTION {
        return Err(PluginError::new(
            "unknown-contribution",
            format!(
                "the scheduler has no contribution `{}`",
                context.contribution
            ),
        ));
    }
    let server = context
        .server_id
        .as_deref()
        .ok_or_else(|| PluginError::new("no-server", "the schedules are shown on a server page"))?;
    if !crate::keys::is_id(server) {
        return Err(PluginError::new(
            "bad-server",
            format!("{server:?} is not a server id"),
        ));
    }
    Ok(server)
}

/// Renders the widget for the viewer.
///
/// # Errors
///
/// Store failures.
pub fn render(context: &RenderContext) -> Result<UiTree, PluginError> {
    let server = server_of(context)?;
    let permissions = &context.server_permissions;
    if !model::holds(permissions, READ) {
        return Ok(tree(permissions, None));
    }
    let now = clock::now_ms();
    let mut shown = Vec::new();
    for schedule in store::list(server)? {
        // A schedule whose timer went missing (a failed firing's chain,
        // say) gets it back when someone looks.
        if schedule.enabled && !armed(&schedule)? {
            run::arm_next(&schedule, now)?;
        }
        let runs = store::runs(server, &schedule.id)?;
        let next = if schedule.enabled {
            run::next_run(&schedule, now).map(|at| {
                let tz = timing::parse_time_zone(&schedule.time_zone).unwrap_or(chrono_tz::Tz::UTC);
                timing::show(at, tz)
            })
        } else {
            None
        };
        shown.push(Shown {
            schedule,
            runs,
            next,
        });
    }
    Ok(tree(permissions, Some(&shown)))
}

/// Whether the schedule's cron timer is armed.
fn armed(schedule: &Schedule) -> Result<bool, PluginError> {
    let key = crate::keys::TimerKey::Cron {
        server: schedule.server_id.clone(),
        schedule: schedule.id.clone(),
    }
    .key();
    Ok(cap_plugin_sdk::timers::list(&key, 1)?
        .iter()
        .any(|t| t.key == key))
}

fn button(label: &str, action: String, tone: Tone, confirm: Option<String>) -> Element {
    Element::Button(Button {
        label: label.to_owned(),
        action,
        tone,
        confirm,
    })
}

fn field(name: &str, label: &str, kind: FieldKind, value: Option<String>) -> FormField {
    FormField {
        name: name.to_owned(),
        label: label.to_owned(),
        kind,
        value,
        options: Vec::new(),
        required: false,
    }
}

fn select(name: &str, label: &str, options: &[&str], value: &str) -> FormField {
    FormField {
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        ..field(name, label, FieldKind::Select, Some(value.to_owned()))
    }
}

fn toggle(name: &str, label: &str, on: bool) -> FormField {
    field(name, label, FieldKind::Toggle, Some(on.to_string()))
}

/// The fields of a schedule, filled with `schedule`'s values or the
/// defaults.
fn schedule_fields(schedule: Option<&Schedule>) -> Vec<FormField> {
    let mut presets = vec![CUSTOM];
    presets.extend(PRESETS);
    vec![
        FormField {
            required: true,
            ..field(
                "name",
                "Name",
                FieldKind::Text,
                schedule.map(|s| s.name.clone()),
            )
        },
        select("preset", "Preset", &presets, CUSTOM),
        field(
            "cron",
            "Cron (minute hour day-of-month month day-of-week)",
            FieldKind::Text,
            Some(schedule.map_or_else(|| "0 4 * * *".to_owned(), |s| s.cron.clone())),
        ),
        field(
            "time_zone",
            "Time zone (IANA, e.g. Europe/Berlin)",
            FieldKind::Text,
            Some(schedule.map_or_else(|| "UTC".to_owned(), |s| s.time_zone.clone())),
        ),
        toggle("enabled", "Enabled", schedule.is_none_or(|s| s.enabled)),
        toggle(
            "only_when_online",
            "Only when the server is online",
            schedule.is_some_and(|s| s.only_when_online),
        ),
        select(
            "missed",
            "A run missed while the Panel was down",
            &[MissedPolicy::RunOnce.label(), MissedPolicy::Skip.label()],
            schedule.map_or(MissedPolicy::RunOnce, |s| s.missed).label(),
        ),
    ]
}

/// The fields of a task; `none` among the kinds when it is optional.
fn task_fields(optional: bool) -> Vec<FormField> {
    let kinds: &[&str] = if optional {
        &["none", "command", "power", "backup"]
    } else {
        &["command", "power", "backup"]
    };
    vec![
        select(
            "task_kind",
            if optional { "First task" } else { "Task" },
            kinds,
            kinds[0],
        ),
        field(
            "task_value",
            "Command, power action (start, stop, restart, kill) or backup name",
            FieldKind::Text,
            None,
        ),
        field(
            "task_offset",
            "Seconds after the task before it",
            FieldKind::Number,
            Some("0".into()),
        ),
        toggle("task_continue", "Continue on failure", false),
    ]
}

/// The widget's tree: `schedules` is `None` when the viewer may not see
/// them.
pub fn tree(permissions: &[String], schedules: Option<&[Shown]>) -> UiTree {
    let mut tree = TreeBuilder::new();
    let mut children = Vec::new();
    let Some(schedules) = schedules else {
        let text = tree.push(Element::Text(format!(
            "Seeing this server's schedules needs {READ} on it."
        )));
        let root = tree.section(None, [text]);
        return tree.finish(root);
    };
    let may_update = model::holds(permissions, UPDATE);
    let may_delete = model::holds(permissions, DELETE);
    if schedules.is_empty() {
        children.push(tree.push(Element::Text("No schedules yet.".into())));
    }
    for shown in schedules {
        let s = &shown.schedule;
        let mut parts = Vec::new();
        let badge = if s.enabled {
            ("enabled".to_owned(), Tone::Success)
        } else {
            ("disabled".to_owned(), Tone::Neutral)
        };
        parts.push(tree.push(Element::Badge(badge)));
        let stat = |key: &str, value: String| Element::Stat(KeyValue::new(key, value));
        let last = s.last_run.as_ref().map_or_else(
            || "never".to_owned(),
            |last| {
                let tz = timing::parse_time_zone(&s.time_zone).unwrap_or(chrono_tz::Tz::UTC);
                format!(
                    "{} ({})",
                    timing::show(last.started_ms, tz),
                    last.state.name()
                )
            },
        );
        let stats = [
            stat("Cron", s.cron.clone()),
            stat("Time zone", s.time_zone.clone()),
            stat(
                "Next run",
                shown.next.clone().unwrap_or_else(|| "none".to_owned()),
            ),
            stat("Last run", last),
            stat(
                "Only when online",
                if s.only_when_online { "yes" } else { "no" }.to_owned(),
            ),
            stat("Missed runs", s.missed.label().to_owned()),
            stat("Id", s.id.clone()),
        ];
        let stats: Vec<u32> = stats.into_iter().map(|e| tree.push(e)).collect();
        parts.push(tree.row(stats));
        let rows = s
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| TableRow {
                cells: vec![
                    (i + 1).to_string(),
                    task.action.describe(),
                    format!("{} s", task.offset_secs),
                    if task.continue_on_failure {
                        "continue"
                    } else {
                        "stop the run"
                    }
                    .to_owned(),
                ],
                actions: if may_update {
                    vec![Button {
                        label: "Remove".into(),
                        action: format!("remove-task:{}", s.id),
                        tone: Tone::Danger,
                        confirm: Some(format!("Remove task {} from {}?", i + 1, s.name)),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        parts.push(tree.push(Element::Table(Table {
            columns: vec![
                "#".into(),
                "Task".into(),
                "Waits".into(),
                "On failure".into(),
            ],
            rows,
        })));
        let mut buttons = Vec::new();
        if may_update {
            buttons.push(tree.push(button("Run now", format!("run:{}", s.id), Tone::Info, None)));
            buttons.push(tree.push(button(
                if s.enabled { "Disable" } else { "Enable" },
                format!("toggle:{}", s.id),
                Tone::Neutral,
                None,
            )));
        }
        if may_delete {
            buttons.push(tree.push(button(
                "Delete",
                format!("delete:{}", s.id),
                Tone::Danger,
                Some(format!("Delete the schedule {}?", s.name)),
            )));
        }
        if !buttons.is_empty() {
            parts.push(tree.row(buttons));
        }
        if may_update {
            parts.push(tree.push(Element::Form(Form {
                fields: schedule_fields(Some(s)),
                submit: Button {
                    label: "Save".into(),
                    action: format!("update:{}", s.id),
                    tone: Tone::Neutral,
                    confirm: None,
                },
            })));
            parts.push(tree.push(Element::Form(Form {
                fields: task_fields(false),
                submit: Button {
                    label: "Add task".into(),
                    action: format!("add-task:{}", s.id),
                    tone: Tone::Neutral,
                    confirm: None,
                },
            })));
        }
        let runs = shown
            .runs
            .iter()
            .map(|r| TableRow {
                cells: vec![
                    timing::show(
                        r.started_ms,
                        timing::parse_time_zone(&s.time_zone).unwrap_or(chrono_tz::Tz::UTC),
                    ),
                    r.trigger.name().to_owned(),
                    r.state.name().to_owned(),
                    r.details(),
                ],
                actions: Vec::new(),
            })
            .collect();
        parts.push(tree.push(Element::Table(Table {
            columns: vec![
                "Started".into(),
                "Trigger".into(),
                "Outcome".into(),
                "Details".into(),
            ],
            rows: runs,
        })));
        children.push(tree.section(Some(&s.name), parts));
    }
    if model::holds(permissions, CREATE) {
        let mut fields = schedule_fields(None);
        fields.extend(task_fields(true));
        let form = tree.push(Element::Form(Form {
            fields,
            submit: Button {
                label: "Create schedule".into(),
                action: "create".into(),
                tone: Tone::Success,
                confirm: None,
            },
        }));
        children.push(tree.section(Some("New schedule"), [form]));
    }
    let root = tree.section(None, children);
    tree.finish(root)
}

/// What an action's name asks: the verb and the schedule it is about.
fn parse_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((verb, id)) => (verb, Some(id)),
        None => (name, None),
    }
}

fn flag(values: &[KeyValue], name: &str, default: bool) -> Result<bool, Refusal> {
    match lookup(values, name).map(str::trim) {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(Refusal::new(
            "invalid-field",
            format!("{name} is true or false, not {other:?}"),
        )),
    }
}

/// The schedule fields of a form, with the defaults for those it lacks.
pub fn read_fields(values: &[KeyValue]) -> Result<Fields, Refusal> {
    let preset = lookup(values, "preset").map(str::trim).unwrap_or(CUSTOM);
    let cron = if preset.is_empty() || preset == CUSTOM {
        lookup(values, "cron").unwrap_or_default().trim().to_owned()
    } else {
        preset.to_owned()
    };
    let missed = match lookup(values, "missed").map(str::trim) {
        None | Some("") => MissedPolicy::RunOnce,
        Some(label) => MissedPolicy::from_label(label).ok_or_else(|| {
            Refusal::new(
                "invalid-field",
                format!("missed is \"run once\" or \"skip\", not {label:?}"),
            )
        })?,
    };
    let fields = Fields {
        name: lookup(values, "name").unwrap_or_default().trim().to_owned(),
        cron,
        time_zone: lookup(values, "time_zone")
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .unwrap_or("UTC")
            .to_owned(),
        enabled: flag(values, "enabled", true)?,
        only_when_online: flag(values, "only_when_online", false)?,
        missed,
    };
    fields.check()?;
    Ok(fields)
}

/// The task of a form; `None` for kind `none` (or no kind) when
/// `optional`.
pub fn read_task(values: &[KeyValue], optional: bool) -> Result<Option<Task>, Refusal> {
    let kind = lookup(values, "task_kind").map(str::trim).unwrap_or("");
    if optional && (kind.is_empty() || kind == "none") {
        return Ok(None);
    }
    let action = Action::parse(kind, lookup(values, "task_value").unwrap_or_default())
        .map_err(|e| Refusal::new("invalid-task", e))?;
    let offset = lookup(values, "task_offset").map(str::trim).unwrap_or("");
    let offset_secs = if offset.is_empty() {
        0
    } else {
        offset.parse::<u32>().map_err(|_| {
            Refusal::new(
                "invalid-task",
                format!(
                    "a task waits a whole number of seconds (0 to {}), not {offset:?}",
                    model::MAX_OFFSET_SECS
                ),
            )
        })?
    };
    Ok(Some(Task {
        action,
        offset_secs,
        continue_on_failure: flag(values, "task_continue", false)?,
    }))
}

/// Handles a button or form of the widget (see the module docs).
///
/// # Errors
///
/// A refusal naming what is wrong or which permission is missing; store
/// and timer failures.
pub fn act(context: &RenderContext, action: &UiAction) -> Result<ActionResult, PluginError> {
    let server = server_of(context)?;
    let permissions = &context.server_permissions;
    let values = &action.values;
    let notify = |message: String| Ok(ActionResult::Notify((message, Tone::Success)));
    let (verb, id) = parse_name(&action.name);
    let id = match (verb, id) {
        ("create", None) => None,
        (_, Some(id)) if crate::keys::is_id(id) => Some(id),
        _ => {
            return Err(PluginError::new(
                "unknown-action",
                format!("the schedules have no action `{}`", action.name),
            ));
        }
    };
    let missing =
        |id: &str| PluginError::new("not-found", format!("this server has no schedule {id}"));
    let now = clock::now_ms();
    match (verb, id) {
        ("create", None) => {
            model::require(permissions, CREATE, "creating a schedule").map_err(refused)?;
            let fields = read_fields(values).map_err(refused)?;
            let task = read_task(values, true).map_err(refused)?;
            if let Some(task) = &task {
                model::check_task(task, permissions).map_err(refused)?;
            }
            let schedule = Schedule {
                id: clock::schedule_id(),
                server_id: server.to_owned(),
                name: fields.name,
                cron: fields.cron,
                time_zone: fields.time_zone,
                enabled: fields.enabled,
                only_when_online: fields.only_when_online,
                missed: fields.missed,
                tasks: task.into_iter().collect(),
                created_by: context.user_id.clone(),
                last_run: None,
            };
            store::create(&schedule)?;
            run::arm_next(&schedule, now)?;
            notify(format!(
                "Schedule {} created ({})",
                schedule.name, schedule.id
            ))
        }
        ("update", Some(id)) => {
            model::require(permissions, UPDATE, "changing a schedule").map_err(refused)?;
            let fields = read_fields(values).map_err(refused)?;
            let updated = store::update(server, id, |s| {
                s.name.clone_from(&fields.name);
                s.cron.clone_from(&fields.cron);
                s.time_zone.clone_from(&fields.time_zone);
                s.enabled = fields.enabled;
                s.only_when_online = fields.only_when_online;
                s.missed = fields.missed;
                Ok(())
            })?
            .ok_or_else(|| missing(id))?;
            run::arm_next(&updated, now)?;
            notify(format!("Schedule {} saved", updated.name))
        }
        ("toggle", Some(id)) => {
            model::require(permissions, UPDATE, "enabling or disabling a schedule")
                .map_err(refused)?;
            let updated = store::update(server, id, |s| {
                s.enabled = !s.enabled;
                Ok(())
            })?
            .ok_or_else(|| missing(id))?;
            run::arm_next(&updated, now)?;
            notify(format!(
                "Schedule {} {}",
                updated.name,
                if updated.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            ))
        }
        ("run", Some(id)) => {
            model::require(permissions, UPDATE, "running a schedule now").map_err(refused)?;
            let schedule = store::load(server, id)?.ok_or_else(|| missing(id))?;
            run::request(&schedule, now)?;
            notify(format!("Schedule {} runs now", schedule.name))
        }
        ("add-task", Some(id)) => {
            model::require(permissions, UPDATE, "adding a task").map_err(refused)?;
            let Some(task) = read_task(values, false).map_err(refused)? else {
                return Err(PluginError::new("invalid-task", "which task?"));
            };
            model::check_task(&task, permissions).map_err(refused)?;
            let updated = store::update(server, id, |s| {
                if s.tasks.len() >= model::MAX_TASKS {
                    return Err(Refusal::new(
                        "too-many-tasks",
                        format!("a schedule has at most {} tasks", model::MAX_TASKS),
                    ));
                }
                s.tasks.push(task.clone());
                Ok(())
            })?
            .ok_or_else(|| missing(id))?;
            notify(format!(
                "Task {} added to {}",
                updated.tasks.len(),
                updated.name
            ))
        }
        ("remove-task", Some(id)) => {
            model::require(permissions, UPDATE, "removing a task").map_err(refused)?;
            let number: usize = lookup(values, "0")
                .and_then(|n| n.trim().parse().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| PluginError::new("invalid-task", "which task? (its number)"))?;
            let updated = store::update(server, id, |s| {
                if number > s.tasks.len() {
                    return Err(Refusal::new(
                        "invalid-task",
                        format!("the schedule has no task {number}"),
                    ));
                }
                s.tasks.remove(number - 1);
                Ok(())
            })?
            .ok_or_else(|| missing(id))?;
            notify(format!("Task {number} removed from {}", updated.name))
        }
        ("delete", Some(id)) => {
            model::require(permissions, DELETE, "deleting a schedule").map_err(refused)?;
            let schedule = store::load(server, id)?.ok_or_else(|| missing(id))?;
            run::disarm_all(&schedule)?;
            store::delete(server, id)?;
            notify(format!("Schedule {} deleted", schedule.name))
        }
        _ => Err(PluginError::new(
            "unknown-action",
            format!("the schedules have no action `{}`", action.name),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LastRun, RunState, Signal};

    fn held(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    fn values(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
        pairs.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect()
    }

    fn shown() -> Vec<Shown> {
        vec![Shown {
            schedule: Schedule {
                id: "sch_1".into(),
                server_id: "srv_1".into(),
                name: "Nightly".into(),
                cron: "0 4 * * *".into(),
                time_zone: "UTC".into(),
                enabled: true,
                only_when_online: false,
                missed: MissedPolicy::RunOnce,
                tasks: vec![Task {
                    action: Action::Power {
                        signal: Signal::Restart,
                    },
                    offset_secs: 0,
                    continue_on_failure: false,
                }],
                created_by: "usr_1".into(),
                last_run: Some(LastRun {
                    id: "1".into(),
                    started_ms: 0,
                    state: RunState::Ok,
                }),
            },
            runs: Vec::new(),
            next: Some("2025-01-01 04:00 UTC".into()),
        }]
    }

    /// The actions a tree offers: buttons' and forms' and row buttons'.
    fn offered(tree: &UiTree) -> Vec<String> {
        let mut actions = Vec::new();
        for node in &tree.nodes {
            match &node.element {
                Element::Button(b) => actions.push(b.action.clone()),
                Element::Form(f) => actions.push(f.submit.action.clone()),
                Element::Table(t) => {
                    for row in &t.rows {
                        actions.extend(row.actions.iter().map(|b| b.action.clone()));
                    }
                }
                _ => {}
            }
        }
        actions
    }

    #[test]
    fn without_schedule_read_nothing_is_shown_or_offered() {
        let tree = tree(&held(&["control.console"]), None);
        assert!(offered(&tree).is_empty());
        assert!(tree.nodes.iter().any(|n| matches!(
            &n.element,
            Element::Text(t) if t.contains("schedule.read")
        )));
    }

    #[test]
    fn the_widget_offers_exactly_what_the_viewers_permissions_on_the_server_allow() {
        let shown = shown();
        let reader = offered(&tree(&held(&[READ]), Some(&shown)));
        assert!(reader.is_empty(), "{reader:?}");
        let creator = offered(&tree(&held(&[READ, CREATE]), Some(&shown)));
        assert_eq!(creator, ["create"]);
        let updater = offered(&tree(&held(&[READ, UPDATE]), Some(&shown)));
        for action in [
            "run:sch_1",
            "toggle:sch_1",
            "update:sch_1",
            "add-task:sch_1",
            "remove-task:sch_1",
        ] {
            assert!(
                updater.iter().any(|a| a == action),
                "{action} in {updater:?}"
            );
        }
        assert!(
            !updater.iter().any(|a| a.starts_with("delete")),
            "{updater:?}"
        );
        let deleter = offered(&tree(&held(&[READ, DELETE]), Some(&shown)));
        assert_eq!(deleter, ["delete:sch_1"]);
        let owner = offered(&tree(&held(&[READ, CREATE, UPDATE, DELETE]), Some(&shown)));
        assert_eq!(owner.len(), 7, "{owner:?}");
    }

    #[test]
    fn a_form_without_optional_fields_gets_the_defaults_and_a_preset_wins_over_cron() {
        let fields =
            read_fields(&values(&[("name", "Daily"), ("cron", "0 4 * * *")])).expect("valid");
        assert_eq!(fields.time_zone, "UTC");
        assert!(fields.enabled);
        assert!(!fields.only_when_online);
        assert_eq!(fields.missed, MissedPolicy::RunOnce);
        let preset = read_fields(&values(&[
            ("name", "Hourly"),
            ("preset", "@hourly"),
            ("cron", "nonsense"),
        ]))
        .expect("the preset is used");
        assert_eq!(preset.cron, "@hourly");
    }

    #[test]
    fn bad_fields_are_refused_naming_the_value() {
        let refusal =
            read_fields(&values(&[("name", "x"), ("cron", "99 * * * *")])).expect_err("bad cron");
        assert_eq!(refusal.code, "invalid-cron");
        let refusal = read_fields(&values(&[
            ("name", "x"),
            ("cron", "@daily"),
            ("time_zone", "Atlantis/Central"),
        ]))
        .expect_err("bad zone");
        assert_eq!(refusal.code, "invalid-time-zone");
        assert!(refusal.message.contains("Atlantis/Central"));
        let refusal = read_fields(&values(&[
            ("name", "x"),
            ("cron", "@daily"),
            ("enabled", "maybe"),
        ]))
        .expect_err("bad toggle");
        assert_eq!(refusal.code, "invalid-field");
        let refusal = read_fields(&values(&[
            ("name", "x"),
            ("cron", "@daily"),
            ("missed", "later"),
        ]))
        .expect_err("bad policy");
        assert_eq!(refusal.code, "invalid-field");
    }

    #[test]
    fn tasks_are_read_from_the_form() {
        assert_eq!(read_task(&values(&[]), true), Ok(None));
        assert_eq!(read_task(&values(&[("task_kind", "none")]), true), Ok(None));
        assert!(read_task(&values(&[]), false).is_err());
        let task = read_task(
            &values(&[
                ("task_kind", "power"),
                ("task_value", "kill"),
                ("task_offset", "30"),
                ("task_continue", "true"),
            ]),
            false,
        )
        .expect("valid")
        .expect("a task");
        assert_eq!(
            task.action,
            Action::Power {
                signal: Signal::Kill
            }
        );
        assert_eq!(task.offset_secs, 30);
        assert!(task.continue_on_failure);
        let refusal = read_task(
            &values(&[
                ("task_kind", "command"),
                ("task_value", "say hi"),
                ("task_offset", "soon"),
            ]),
            false,
        )
        .expect_err("not a number");
        assert_eq!(refusal.code, "invalid-task");
    }

    #[test]
    fn action_names_carry_the_schedule() {
        assert_eq!(parse_name("create"), ("create", None));
        assert_eq!(parse_name("run:sch_1"), ("run", Some("sch_1")));
    }
}
