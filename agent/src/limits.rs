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
