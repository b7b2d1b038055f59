//! Resource limits for a server's processes: a cgroup v2 group when the
//! Agent may create one, otherwise rlimits set on the process after spawn.

use std::path::{Path, PathBuf};

use cap_protocol::{LimitsApplied, ServerLimits};
use rustix::process::{Pid, Resource, Rlimit};

/// Where the Agent would create cgroups: `/sys/fs/cgroup/cap-agent` when
/// `/sys/fs/cgroup` is a cgroup v2 hierarchy, else `None`.
pub fn detect_cgroup_base() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    root.join("cgroup.controllers")
        .is_file()
        .then(|| root.join("cap-agent"))
}

/// Applies `limits` to the process group led by `pid`: a cgroup under
/// `cgroup_base` (moving `pid` into it) when that works, else rlimits.
pub fn apply(
    cgroup_base: Option<&Path>,
    server_id: &str,
    pid: u32,
    limits: &ServerLimits,
) -> LimitsApplied {
    let cgroup_error = match cgroup_base {
        Some(base) => match cgroup(base, server_id, pid, limits) {
            Ok(path) => {
                return LimitsApplied::CgroupV2 {
                    path: path.display().to_string(),
                };
            }
            Err(error) => format!("cgroup v2: {error}"),
        },
        None => "cgroup v2 is not available".to_owned(),
    };
    match rlimits(pid, limits) {
        Ok(true) => LimitsApplied::Rlimit,
        Ok(false) => LimitsApplied::None {
            reason: "no limits were requested".into(),
        },
        Err(error) => LimitsApplied::None {
            reason: format!("{cgroup_error}; rlimit: {error}"),
        },
    }
}

fn cgroup(
    base: &Path,
    server_id: &str,
    pid: u32,
    limits: &ServerLimits,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(base)?;
    // Children of `base` need the controllers enabled in it; this fails
    // harmlessly when they already are or cannot be.
    let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +cpu +pids");
    let group = base.join(format!("server-{server_id}"));
    std::fs::create_dir_all(&group)?;
    let memory = match limits.memory_mb {
        0 => "max".to_owned(),
        mb => (mb << 20).to_string(),
    };
    std::fs::write(group.join("memory.max"), memory)?;
    let cpu = match limits.cpu_percent {
        0 => "max 100000".to_owned(),
        percent => format!("{} 100000", u64::from(percent) * 1000),
    };
    std::fs::write(group.join("cpu.max"), cpu)?;
    let pids = match limits.max_processes {
        0 => "max".to_owned(),
        n => n.to_string(),
    };
    std::fs::write(group.join("pids.max"), pids)?;
    std::fs::write(group.join("cgroup.procs"), pid.to_string())?;
    Ok(group)
}

/// Sets the address-space and process-count rlimits. `Ok(false)` when no
/// limit was asked for. CPU percent cannot be expressed as an rlimit.
fn rlimits(pid: u32, limits: &ServerLimits) -> std::io::Result<bool> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("invalid pid"))?;
    let mut applied = false;
    if limits.memory_mb > 0 {
        let bytes = limits.memory_mb.saturating_mul(1 << 20);
        rustix::process::prlimit(
            Some(pid),
            Resource::As,
            Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            },
        )?;
        applied = true;
    }
    if limits.max_processes > 0 {
        let n = u64::from(limits.max_processes);
        rustix::process::prlimit(
            Some(pid),
            Resource::Nproc,
            Rlimit {
                current: Some(n),
                maximum: Some(n),
            },
        )?;
        applied = true;
    }
    Ok(applied)
}

/// The address-space limit in force for `pid`, from `/proc/<pid>/limits`
/// (`None` for unlimited or unreadable).
pub fn address_space_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Removes a server's cgroup, if it has one (after its processes exited).
pub fn remove_cgroup(applied: &LimitsApplied) {
    if let LimitsApplied::CgroupV2 { path } = applied {
        let _ = std::fs::remove_dir(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory_mb: u64, cpu_percent: u32, max_processes: u32) -> ServerLimits {
        ServerLimits {
            memory_mb,
            cpu_percent,
            max_processes,
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    // The kernel's enforcement needs a cgroup v2 hierarchy with controllers,
    // which machines with cgroup v1 lack; what the Agent writes into one is
    // checked here against a directory laid out the same way.
    #[test]
    fn a_cgroup_v2_group_gets_memory_cpu_and_process_limits_in_the_kernels_formats() {
        let base = tempfile::tempdir().expect("a temporary directory");
        let applied = apply(Some(base.path()), "srv_1", 4242, &limits(512, 150, 64));
        let group = base.path().join("server-srv_1");
        assert_eq!(
            applied,
            LimitsApplied::CgroupV2 {
                path: group.display().to_string()
            }
        );
        assert_eq!(read(&group.join("memory.max")), (512u64 << 20).to_string());
        assert_eq!(
            read(&group.join("cpu.max")),
            "150000 100000",
            "1.5 cores per 100 ms period"
        );
        assert_eq!(read(&group.join("pids.max")), "64");
        assert_eq!(
            read(&group.join("cgroup.procs")),
            "4242",
            "the server's process joins the group"
        );
        assert_eq!(
            read(&base.path().join("cgroup.subtree_control")),
            "+memory +cpu +pids",
            "the controllers are enabled for the Agent's groups"
        );

        remove_cgroup(&applied);
        assert!(group.exists(), "a group with files left is not removed");
    }

    #[test]
    fn zero_limits_are_written_as_max_in_a_cgroup() {
        let base = tempfile::tempdir().expect("a temporary directory");
        apply(Some(base.path()), "srv_2", 1, &limits(0, 0, 0));
        let group = base.path().join("server-srv_2");
        assert_eq!(read(&group.join("memory.max")), "max");
        assert_eq!(read(&group.join("cpu.max")), "max 100000");
        assert_eq!(read(&group.join("pids.max")), "max");
    }

    #[test]
    fn without_a_usable_cgroup_base_the_limits_fall_back_to_rlimits_and_say_so() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let base = tempfile::tempdir().expect("a temporary directory");
        let not_a_directory = base.path().join("file");
        std::fs::write(&not_a_directory, "").expect("a file");

        let applied = apply(
            Some(&not_a_directory),
            "srv_3",
            child.id(),
            &limits(256, 50, 0),
        );
        assert_eq!(applied, LimitsApplied::Rlimit);
        assert_eq!(address_space_limit(child.id()), Some(256 << 20));

        let unlimited = apply(None, "srv_3", child.id(), &limits(0, 50, 0));
        assert_eq!(
            unlimited,
            LimitsApplied::None {
                reason: "no limits were requested".into()
            },
            "CPU alone cannot be an rlimit"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
