//! Schedules, their tasks and their runs, as stored (JSON in the plugin's
//! key-value store), and the rules a schedule must follow. Pure: the
//! store and the host calls are elsewhere.

use serde::{Deserialize, Serialize};

use crate::timing::{self, MissedPolicy};

/// The permission that shows a server's schedules.
pub const READ: &str = "schedule.read";
/// The permission that creates schedules.
pub const CREATE: &str = "schedule.create";
/// The permission that changes schedules (their fields and tasks,
/// enabling, running one now).
pub const UPDATE: &str = "schedule.update";
/// The permission that deletes schedules.
pub const DELETE: &str = "schedule.delete";

/// Most schedules per server.
pub const MAX_SCHEDULES: usize = 50;
/// Most tasks per schedule.
pub const MAX_TASKS: usize = 20;
/// The longest wait before a task, in seconds (Pterodactyl's).
pub const MAX_OFFSET_SECS: u32 = 900;
/// The longest schedule name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest console command, in bytes (the host's limit).
pub const MAX_COMMAND_BYTES: usize = 4096;
/// The longest backup name, in characters (the host's limit).
pub const MAX_BACKUP_NAME_CHARS: usize = 191;
/// How many runs of a schedule are kept.
pub const KEPT_RUNS: usize = 10;

/// A power action a task takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Start the server.
    Start,
    /// Stop it gracefully.
    Stop,
    /// Restart it.
    Restart,
    /// Kill it.
    Kill,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 4] = [Signal::Start, Signal::Stop, Signal::Restart, Signal::Kill];

    /// Its name (`start`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Start => "start",
            Signal::Stop => "stop",
            Signal::Restart => "restart",
            Signal::Kill => "kill",
        }
    }

    /// The signal named `name`.
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name.trim())
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Sends a line to the server's console.
    Command {
        /// The line.
        line: String,
    },
    /// A power action.
    Power {
        /// Which.
        signal: Signal,
    },
    /// Starts a backup.
    Backup {
        /// Its name; the date and time when none.
        name: Option<String>,
    },
}

impl Action {
    /// The server permission a person needs to give a schedule this task:
    /// a schedule must not do what its author may not do on the server.
    pub fn permission(&self) -> &'static str {
        match self {
            Action::Command { .. } => "control.console",
            Action::Power {
                signal: Signal::Start,
            } => "control.start",
            Action::Power {
                signal: Signal::Stop | Signal::Kill,
            } => "control.stop",
            Action::Power {
                signal: Signal::Restart,
            } => "control.restart",
            Action::Backup { .. } => "backup.create",
        }
    }

    /// For people: `console command "say hi"`, `power restart`, `backup`.
    pub fn describe(&self) -> String {
        match self {
            Action::Command { line } => format!("console command {line:?}"),
            Action::Power { signal } => format!("power {}", signal.name()),
            Action::Backup { name: Some(name) } => format!("backup {name:?}"),
            Action::Backup { name: None } => "backup".to_owned(),
        }
    }

    /// The task kind and value as the forms take them (`command`, the
    /// line): parses one.
    ///
    /// # Errors
    ///
    /// A sentence naming what is wrong.
    pub fn parse(kind: &str, value: &str) -> Result<Action, String> {
        let value = value.trim();
        match kind.trim() {
            "command" => {
                if value.is_empty() {
                    return Err("a console command task needs the command".into());
                }
                if value.len() > MAX_COMMAND_BYTES || value.contains(['\n', '\r']) {
                    return Err(format!(
                        "a console command is one line of at most {MAX_COMMAND_BYTES} bytes"
                    ));
                }
                Ok(Action::Command {
                    line: value.to_owned(),
                })
            }
            "power" => Signal::from_name(value)
                .map(|signal| Action::Power { signal })
                .ok_or_else(|| {
                    format!("{value:?} is not a power action (start, stop, restart or kill)")
                }),
            "backup" => {
                if value.chars().count() > MAX_BACKUP_NAME_CHARS
                    || value.chars().any(char::is_control)
                {
                    return Err(format!(
                        "a backup name is at most {MAX_BACKUP_NAME_CHARS} characters without control characters"
                    ));
                }
                Ok(Action::Backup {
                    name: (!value.is_empty()).then(|| value.to_owned()),
                })
            }
            other => Err(format!(
                "{other:?} is not a kind of task (command, power or backup)"
            )),
        }
    }
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// What it does.
    pub action: Action,
    /// Seconds to wait after the task before it (after the run starts, for
    /// the first), 0 to [`MAX_OFFSET_SECS`].
    pub offset_secs: u32,
    /// Whether the run goes on when this task fails.
    pub continue_on_failure: bool,
}

/// How a run ended, or that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Tasks are waiting for their offsets.
    Running,
    /// Every task succeeded.
    Ok,
    /// A task failed (or the server is gone).
    Failed,
    /// Not run: the server was offline and the schedule runs only while it
    /// is online, or the run was missed and the schedule skips missed runs.
    Skipped,
}

impl RunState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
        }
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Its cron time came.
    Cron,
    /// Its cron time passed while no Panel could run it; run late, once.
    Missed,
    /// Someone clicked "Run now".
    Manual,
}

impl Trigger {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Missed => "missed",
            Trigger::Manual => "manual",
        }
    }
}

/// How one task of a run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// The task's position, from 0.
    pub index: usize,
    /// When it ran (milliseconds since the Unix epoch).
    pub at_ms: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What happened, for people.
    pub message: String,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Its id: the start time, zero-padded, and a random suffix (so keys
    /// sort by time).
    pub id: String,
    /// Why it started.
    pub trigger: Trigger,
    /// When it was due (milliseconds since the Unix epoch).
    pub due_ms: u64,
    /// When it started.
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// How it went.
    pub state: RunState,
    /// Each task that ran, in order.
    pub tasks: Vec<TaskOutcome>,
    /// Why it was skipped or failed before any task.
    pub note: Option<String>,
}

impl Run {
    /// A run starting at `started_ms`.
    pub fn new(id: String, trigger: Trigger, due_ms: u64, started_ms: u64) -> Run {
        Run {
            id,
            trigger,
            due_ms,
            started_ms,
            finished_ms: None,
            state: RunState::Running,
            tasks: Vec::new(),
            note: None,
        }
    }

    /// Ends the run at `at_ms`: failed if any task failed, else ok.
    pub fn finish(&mut self, at_ms: u64) {
        self.finished_ms = Some(at_ms);
        self.state = if self.tasks.iter().any(|t| !t.ok) {
            RunState::Failed
        } else {
            RunState::Ok
        };
    }

    /// Ends the run before any task, at `at_ms`, as `state` because of
    /// `note`.
    pub fn end_early(&mut self, state: RunState, note: String, at_ms: u64) {
        self.finished_ms = Some(at_ms);
        self.state = state;
        self.note = Some(note);
    }

    /// What the run's record says, in one line.
    pub fn details(&self) -> String {
        let mut parts: Vec<String> = self.note.iter().cloned().collect();
        parts.extend(self.tasks.iter().map(|t| {
            format!(
                "task {}: {}{}",
                t.index + 1,
                if t.ok { "" } else { "failed: " },
                t.message
            )
        }));
        parts.join("; ")
    }
}

/// The last run, as a schedule remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The run's id.
    pub id: String,
    /// When it started.
    pub started_ms: u64,
    /// How it went (or that it runs).
    pub state: RunState,
}

/// A schedule of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id (`sch_…`).
    pub id: String,
    /// The server it runs on.
    pub server_id: String,
    /// Its name.
    pub name: String,
    /// Five fields or a preset.
    pub cron: String,
    /// An IANA time zone.
    pub time_zone: String,
    /// Whether its cron time runs it.
    pub enabled: bool,
    /// Whether it runs only while the server is running.
    pub only_when_online: bool,
    /// What a missed run does.
    pub missed: MissedPolicy,
    /// Its tasks, in order.
    pub tasks: Vec<Task>,
    /// Who created it.
    pub created_by: String,
    /// Its last run.
    pub last_run: Option<LastRun>,
}

/// The fields of a schedule a form sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Its name.
    pub name: String,
    /// Five fields or a preset.
    pub cron: String,
    /// An IANA time zone.
    pub time_zone: String,
    /// Enabled.
    pub enabled: bool,
    /// Only while the server runs.
    pub only_when_online: bool,
    /// What a missed run does.
    pub missed: MissedPolicy,
}

/// A problem with what was asked, for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A short stable code (`invalid-cron`, `forbidden`, …).
    pub code: &'static str,
    /// The sentence shown.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl Fields {
    /// Checks every field: the name, the cron expression (five fields or a
    /// preset), the time zone.
    ///
    /// # Errors
    ///
    /// The first problem: `invalid-name`, `invalid-cron` or
    /// `invalid-time-zone`, with a sentence naming the value.
    pub fn check(&self) -> Result<(), Refusal> {
        let name = self.name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(Refusal::new(
                "invalid-name",
                format!("a schedule's name is 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        timing::parse_cron(&self.cron).map_err(|e| Refusal::new("invalid-cron", e))?;
        timing::parse_time_zone(&self.time_zone)
            .map_err(|e| Refusal::new("invalid-time-zone", e))?;
        Ok(())
    }
}

/// Refuses `task` unless its offset is in range and the person may do
/// what it does on the server (`permissions`: theirs there).
///
/// # Errors
///
/// `invalid-task` or `forbidden`.
pub fn check_task(task: &Task, permissions: &[String]) -> Result<(), Refusal> {
    if task.offset_secs > MAX_OFFSET_SECS {
        return Err(Refusal::new(
            "invalid-task",
            format!(
                "a task waits 0 to {MAX_OFFSET_SECS} seconds, not {}",
                task.offset_secs
            ),
        ));
    }
    let needed = task.action.permission();
    if !permissions.iter().any(|p| p == needed) {
        return Err(Refusal::new(
            "forbidden",
            format!(
                "a {} task needs {needed} on this server",
                task.action.describe()
            ),
        ));
    }
    Ok(())
}

/// Whether `permissions` (the viewer's on the server) hold `permission`.
pub fn holds(permissions: &[String], permission: &str) -> bool {
    permissions.iter().any(|p| p == permission)
}

/// Refuses unless `permissions` hold `permission`, naming it.
///
/// # Errors
///
/// `forbidden`, naming the permission and `what` it is needed for.
pub fn require(permissions: &[String], permission: &str, what: &str) -> Result<(), Refusal> {
    if holds(permissions, permission) {
        Ok(())
    } else {
        Err(Refusal::new(
            "forbidden",
            format!("{what} needs {permission} on this server"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(cron: &str, zone: &str) -> Fields {
        Fields {
            name: "Nightly restart".into(),
            cron: cron.into(),
            time_zone: zone.into(),
            enabled: true,
            only_when_online: false,
            missed: MissedPolicy::RunOnce,
        }
    }

    fn held(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn a_bad_cron_expression_or_time_zone_is_refused_with_its_own_code() {
        assert_eq!(fields("0 4 * * *", "Europe/Berlin").check(), Ok(()));
        let refusal = fields("0 4 * *", "UTC").check().expect_err("four fields");
        assert_eq!(refusal.code, "invalid-cron");
        assert!(
            refusal.message.contains("\"0 4 * *\""),
            "{}",
            refusal.message
        );
        let refusal = fields("@daily", "Nowhere/Town")
            .check()
            .expect_err("no zone");
        assert_eq!(refusal.code, "invalid-time-zone");
        assert!(
            refusal.message.contains("\"Nowhere/Town\""),
            "{}",
            refusal.message
        );
        let mut nameless = fields("@daily", "UTC");
        nameless.name = "  ".into();
        assert_eq!(nameless.check().expect_err("no name").code, "invalid-name");
    }

    #[test]
    fn a_task_needs_the_permission_of_what_it_does() {
        let task = |action| Task {
            action,
            offset_secs: 0,
            continue_on_failure: false,
        };
        let restart = task(Action::Power {
            signal: Signal::Restart,
        });
        assert_eq!(check_task(&restart, &held(&["control.restart"])), Ok(()));
        let refusal = check_task(&restart, &held(&["control.start"])).expect_err("no restart");
        assert_eq!(refusal.code, "forbidden");
        assert!(
            refusal.message.contains("control.restart"),
            "{}",
            refusal.message
        );
        let kill = task(Action::Power {
            signal: Signal::Kill,
        });
        assert_eq!(kill.action.permission(), "control.stop");
        let say = task(Action::Command {
            line: "say hi".into(),
        });
        assert!(check_task(&say, &held(&["control.start"])).is_err());
        assert!(check_task(&say, &held(&["control.console"])).is_ok());
        let backup = task(Action::Backup { name: None });
        assert_eq!(backup.action.permission(), "backup.create");
        let mut late = say.clone();
        late.offset_secs = MAX_OFFSET_SECS + 1;
        assert_eq!(
            check_task(&late, &held(&["control.console"]))
                .expect_err("too long")
                .code,
            "invalid-task"
        );
    }

    #[test]
    fn tasks_parse_from_the_forms_kind_and_value() {
        assert_eq!(
            Action::parse("command", " say Restarting soon "),
            Ok(Action::Command {
                line: "say Restarting soon".into()
            })
        );
        assert_eq!(
            Action::parse("power", "restart"),
            Ok(Action::Power {
                signal: Signal::Restart
            })
        );
        assert_eq!(
            Action::parse("backup", ""),
            Ok(Action::Backup { name: None })
        );
        assert!(Action::parse("command", "").is_err());
        assert!(Action::parse("command", "a\nb").is_err());
        assert!(
            Action::parse("power", "explode")
                .expect_err("no such signal")
                .contains("start, stop, restart or kill")
        );
        assert!(Action::parse("teleport", "x").is_err());
    }

    #[test]
    fn a_run_is_failed_when_any_task_failed() {
        let mut run = Run::new("1-a".into(), Trigger::Cron, 1, 2);
        run.tasks.push(TaskOutcome {
            index: 0,
            at_ms: 2,
            ok: true,
            message: "sent".into(),
        });
        run.finish(3);
        assert_eq!(run.state, RunState::Ok);
        run.tasks.push(TaskOutcome {
            index: 1,
            at_ms: 3,
            ok: false,
            message: "not found: server s".into(),
        });
        run.finish(4);
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(
            run.details(),
            "task 1: sent; task 2: failed: not found: server s"
        );
    }

    #[test]
    fn schedules_survive_a_json_round_trip() {
        let schedule = Schedule {
            id: "sch_1".into(),
            server_id: "srv_1".into(),
            name: "Backups".into(),
            cron: "@daily".into(),
            time_zone: "UTC".into(),
            enabled: true,
            only_when_online: true,
            missed: MissedPolicy::Skip,
            tasks: vec![Task {
                action: Action::Backup {
                    name: Some("nightly".into()),
                },
                offset_secs: 30,
                continue_on_failure: true,
            }],
            created_by: "usr_1".into(),
            last_run: None,
        };
        let json = serde_json::to_string(&schedule).expect("serialises");
        assert!(json.contains("\"kind\":\"backup\""), "{json}");
        assert!(json.contains("\"missed\":\"skip\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Schedule>(&json).expect("parses"),
            schedule
        );
    }
}
