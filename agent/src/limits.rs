//! Resource limits and identity for a server's processes, all applied in
//! the child between `fork` and `exec`, so that the program's first
//! instruction already runs confined (nothing it forks escapes, as it could
//! when limits were set on the process after it started).
//!
//! [`prepare`] runs in the Agent before the spawn: it creates the server's
//! cgroup and writes its limits, and builds a [`Prepared`] whose
//! [`Prepared::apply_before_exec`] installs the child's steps:
//!
//! 1. join the cgroup(s) (writing `0`, "this process", to `cgroup.procs`);
//! 2. `setrlimit`: the process count (`RLIMIT_NPROC`) always — it counts
//!    every process of the user, so with a [`RunAs`] user it bounds all the
//!    Agent's servers together, and the per-server bound is the `pids`
//!    cgroup —, and the address space when no memory cgroup applies;
//! 3. drop supplementary groups, set the group, set the user
//!    ([`crate::isolation`]), and set `no_new_privs`.
//!
//! Cgroups: v2 (`memory.max`, `cpu.max`, `pids.max` in one group under
//! `/sys/fs/cgroup/cap-agent`) when `/sys/fs/cgroup` is a v2 hierarchy; else
//! v1, one group per controller under
//! `/sys/fs/cgroup/{memory,cpu,pids}/cap-agent` (`memory.limit_in_bytes`,
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `pids.max`) when those
//! hierarchies are mounted and writable; else rlimits alone.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_protocol::{LimitsApplied, ServerLimits};
use rustix::process::{Resource, Rlimit};

use crate::isolation::RunAs;

/// The process limit set when a server's spec asks for none.
pub const DEFAULT_MAX_PROCESSES: u64 = 4096;

/// The group directory's name under each hierarchy.
const GROUP_DIR: &str = "cap-agent";

/// Which cgroup hierarchy the Agent creates groups in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// A cgroup v2 hierarchy: groups go under `base`.
    V2 {
        /// E.g. `/sys/fs/cgroup/cap-agent`.
        base: PathBuf,
    },
    /// cgroup v1: `root/{memory,cpu,pids}` are the controllers'
    /// hierarchies; groups go under `root/<controller>/cap-agent`.
    V1 {
        /// E.g. `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

/// The hierarchy this machine offers: v2 when `/sys/fs/cgroup` is one, v1
/// when its `memory`, `cpu` and `pids` hierarchies are mounted and
/// writable, else `None`.
pub fn detect_cgroups() -> Option<Cgroups> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").is_file() {
        return Some(Cgroups::V2 {
            base: root.join(GROUP_DIR),
        });
    }
    let writable =
        |file: &str| rustix::fs::access(root.join(file), rustix::fs::Access::WRITE_OK).is_ok();
    (writable("memory/memory.limit_in_bytes")
        && writable("cpu/cpu.cfs_quota_us")
        && writable("pids"))
    .then(|| Cgroups::V1 {
        root: root.to_owned(),
    })
}

/// What the child does before `exec`, prepared by [`prepare`].
#[derive(Debug)]
pub struct Prepared {
    /// `cgroup.procs` files to join.
    procs: Vec<CString>,
    /// rlimits to set (soft = hard).
    rlimits: Vec<(Resource, u64)>,
    /// The user to become.
    run_as: Option<RunAs>,
    /// What the report says.
    applied: LimitsApplied,
}

/// Creates `server_id`'s cgroup(s) with `limits` and plans the child's
/// steps (see the module docs). A cgroup that cannot be made falls back to
/// rlimits, and the report says why.
pub fn prepare(
    cgroups: Option<&Cgroups>,
    server_id: &str,
    limits: &ServerLimits,
    run_as: Option<&RunAs>,
) -> Prepared {
    let nproc = match limits.max_processes {
        0 => DEFAULT_MAX_PROCESSES,
        n => u64::from(n),
    };
    let mut rlimits = vec![(Resource::Nproc, nproc)];
    let group = match cgroups {
        Some(Cgroups::V2 { base }) => cgroup_v2(base, server_id, limits).map(|dir| {
            (
                vec![dir.join("cgroup.procs")],
                LimitsApplied::CgroupV2 {
                    path: dir.display().to_string(),
                },
            )
        }),
        Some(Cgroups::V1 { root }) => cgroup_v1(root, server_id, limits).map(|dirs| {
            (
                dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
                LimitsApplied::CgroupV1 {
                    paths: dirs.iter().map(|d| d.display().to_string()).collect(),
                },
            )
        }),
        None => Err(std::io::Error::other("no writable cgroup hierarchy")),
    };
    let (procs, applied) = match group {
        Ok((procs, applied)) => (procs, applied),
        Err(error) => {
            if cgroups.is_some() {
                tracing::warn!(server = server_id, %error, "no cgroup; limits fall back to rlimits");
            }
            if limits.memory_mb > 0 {
                rlimits.push((Resource::As, limits.memory_mb.saturating_mul(1 << 20)));
            }
            (Vec::new(), LimitsApplied::Rlimit)
        }
    };
    Prepared {
        procs: procs
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .collect(),
        rlimits,
        run_as: run_as.cloned(),
        applied,
    }
}

impl Prepared {
    /// Installs the child's steps on `command` and returns what the report
    /// says was applied.
    pub fn apply_before_exec(self, command: &mut tokio::process::Command) -> LimitsApplied {
        let Prepared {
            procs,
            rlimits,
            run_as,
            applied,
        } = self;
        let child_steps = move || -> std::io::Result<()> {
            for file in &procs {
                let fd = rustix::fs::open(
                    file.as_c_str(),
                    rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                rustix::io::write(&fd, b"0")?;
            }
            for &(resource, value) in &rlimits {
                rustix::process::setrlimit(
                    resource,
                    Rlimit {
                        current: Some(value),
                        maximum: Some(value),
                    },
                )?;
            }
            let check = |result: libc::c_int| {
                if result == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            if let Some(user) = &run_as {
                // SAFETY: plain system calls with no pointers but the
                // null, zero-length group list.
                #[allow(unsafe_code)]
                unsafe {
                    check(libc::setgroups(0, std::ptr::null()))?;
                    check(libc::setgid(user.gid))?;
                    check(libc::setuid(user.uid))?;
                }
            }
            // SAFETY: a plain system call with integer arguments.
            #[allow(unsafe_code)]
            check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
            Ok(())
        };
        // SAFETY: the closure runs in the forked child, before `exec`, as
        // std's own user switch does. It only makes system calls with data
        // prepared before the fork (no allocation, no locks): open/write on
        // pre-built C strings, setrlimit, setgroups, setgid, setuid and
        // prctl. Errors convert without allocating (`Errno` and
        // `last_os_error` to `io::Error`).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(child_steps);
        }
        applied
    }

    /// What the report will say.
    pub fn applied(&self) -> &LimitsApplied {
        &self.applied
    }
}

fn cgroup_v2(base: &Path, server_id: &str, limits: &ServerLimits) -> std::io::Result<PathBuf> {
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
    Ok(group)
}

/// The v1 groups, in the order `memory`, `cpu`, `pids`.
fn cgroup_v1(root: &Path, server_id: &str, limits: &ServerLimits) -> std::io::Result<Vec<PathBuf>> {
    let group = |controller: &str| -> std::io::Result<PathBuf> {
        let dir = root
            .join(controller)
            .join(GROUP_DIR)
            .join(format!("server-{server_id}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    };
    let memory = group("memory")?;
    let bytes = match limits.memory_mb {
        0 => "-1".to_owned(),
        mb => (mb << 20).to_string(),
    };
    std::fs::write(memory.join("memory.limit_in_bytes"), bytes)?;
    let cpu = group("cpu")?;
    std::fs::write(cpu.join("cpu.cfs_period_us"), "100000")?;
    let quota = match limits.cpu_percent {
        0 => "-1".to_owned(),
        percent => (u64::from(percent) * 1000).to_string(),
    };
    std::fs::write(cpu.join("cpu.cfs_quota_us"), quota)?;
    let pids = group("pids")?;
    let max = match limits.max_processes {
        0 => "max".to_owned(),
        n => n.to_string(),
    };
    std::fs::write(pids.join("pids.max"), max)?;
    Ok(vec![memory, cpu, pids])
}

/// The address-space limit in force for `pid`, from `/proc/<pid>/limits`
/// (`None` for unlimited or unreadable).
pub fn address_space_limit(pid: u32) -> Option<u64> {
    limit(pid, "Max address space")
}

/// The process-count limit in force for `pid` (`None` for unlimited or
/// unreadable).
pub fn process_limit(pid: u32) -> Option<u64> {
    limit(pid, "Max processes")
}

fn limit(pid: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Removes a server's cgroup(s), if it has any (after its processes
/// exited).
pub fn remove_cgroup(applied: &LimitsApplied) {
    match applied {
        LimitsApplied::CgroupV2 { path } => {
            let _ = std::fs::remove_dir(path);
        }
        LimitsApplied::CgroupV1 { paths } => {
            for path in paths {
                let _ = std::fs::remove_dir(path);
            }
        }
        _ => {}
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
            disk_mb: 0,
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    // The kernel's enforcement is tested for real in the Agent's
    // `isolation` tests; what the Agent writes into a hierarchy is checked
    // here against directories laid out the same way.
    #[test]
    fn a_cgroup_v2_group_gets_memory_cpu_and_process_limits_in_the_kernels_formats() {
        let base = tempfile::tempdir().expect("a temporary directory");
        let cgroups = Cgroups::V2 {
            base: base.path().to_owned(),
        };
        let prepared = prepare(Some(&cgroups), "srv_1", &limits(512, 150, 64), None);
        let group = base.path().join("server-srv_1");
        assert_eq!(
            prepared.applied(),
            &LimitsApplied::CgroupV2 {
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
            read(&base.path().join("cgroup.subtree_control")),
            "+memory +cpu +pids",
            "the controllers are enabled for the Agent's groups"
        );
        assert_eq!(
            prepared.procs,
            [CString::new(group.join("cgroup.procs").display().to_string()).expect("path")],
            "the child joins the group itself, before exec"
        );
        assert_eq!(prepared.rlimits, [(Resource::Nproc, 64)]);
    }

    #[test]
    fn cgroup_v1_groups_get_memory_cpu_and_process_limits_in_the_kernels_formats() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let cgroups = Cgroups::V1 {
            root: root.path().to_owned(),
        };
        let prepared = prepare(Some(&cgroups), "srv_4", &limits(256, 250, 0), None);
        let group = |c: &str| root.path().join(c).join("cap-agent/server-srv_4");
        assert_eq!(
            prepared.applied(),
            &LimitsApplied::CgroupV1 {
                paths: ["memory", "cpu", "pids"]
                    .map(|c| group(c).display().to_string())
                    .to_vec()
            }
        );
        assert_eq!(
            read(&group("memory").join("memory.limit_in_bytes")),
            (256u64 << 20).to_string()
        );
        assert_eq!(read(&group("cpu").join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&group("cpu").join("cpu.cfs_quota_us")), "250000");
        assert_eq!(read(&group("pids").join("pids.max")), "max");
        assert_eq!(prepared.procs.len(), 3);
        assert_eq!(
            prepared.rlimits,
            [(Resource::Nproc, DEFAULT_MAX_PROCESSES)],
            "a process limit is always set; memory is the cgroup's"
        );
    }

    #[test]
    fn zero_limits_are_written_as_max_in_a_cgroup() {
        let base = tempfile::tempdir().expect("a temporary directory");
        let cgroups = Cgroups::V2 {
            base: base.path().to_owned(),
        };
        prepare(Some(&cgroups), "srv_2", &limits(0, 0, 0), None);
        let group = base.path().join("server-srv_2");
        assert_eq!(read(&group.join("memory.max")), "max");
        assert_eq!(read(&group.join("cpu.max")), "max 100000");
        assert_eq!(read(&group.join("pids.max")), "max");
    }

    #[tokio::test]
    async fn without_a_usable_cgroup_the_limits_are_rlimits_set_before_exec() {
        let base = tempfile::tempdir().expect("a temporary directory");
        let not_a_directory = base.path().join("file");
        std::fs::write(&not_a_directory, "").expect("a file");
        let cgroups = Cgroups::V2 {
            base: not_a_directory,
        };
        let mut command = tokio::process::Command::new("sleep");
        command.arg("30").kill_on_drop(true);
        let applied = prepare(Some(&cgroups), "srv_3", &limits(256, 50, 0), None)
            .apply_before_exec(&mut command);
        assert_eq!(applied, LimitsApplied::Rlimit);
        let child = command.spawn().expect("sleep starts");
        let pid = child.id().expect("a pid");
        assert_eq!(address_space_limit(pid), Some(256 << 20));
        assert_eq!(process_limit(pid), Some(DEFAULT_MAX_PROCESSES));
        drop(child);
    }
}
