//! Signals to process groups, without unsafe code (rustix).

use rustix::process::{Pid, Signal};

/// Sends `signal` to the process group led by `pid`. Returns whether it was
/// delivered (a group that is gone is not an error worth reporting).
pub fn kill_group(pid: u32, signal: Signal) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    rustix::process::kill_process_group(pid, signal).is_ok()
}

/// The rustix signal for a plan's signal.
pub fn from_plan(signal: cap_protocol::Signal) -> Signal {
    match signal {
        cap_protocol::Signal::Interrupt => Signal::INT,
        cap_protocol::Signal::Terminate => Signal::TERM,
        cap_protocol::Signal::Quit => Signal::QUIT,
        cap_protocol::Signal::Hangup => Signal::HUP,
        cap_protocol::Signal::Kill => Signal::KILL,
    }
}

/// The name a container engine takes for `signal` (`SIGTERM`, …).
pub fn name(signal: Signal) -> &'static str {
    if signal == Signal::INT {
        "SIGINT"
    } else if signal == Signal::QUIT {
        "SIGQUIT"
    } else if signal == Signal::HUP {
        "SIGHUP"
    } else if signal == Signal::KILL {
        "SIGKILL"
    } else {
        "SIGTERM"
    }
}
