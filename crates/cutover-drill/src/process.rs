//! The processes a drill starts, as the operating system sees them: how a command is started
//! so that it acts only once its PID is in the journal, and whether the process group of a
//! command a dead drill started may still run.
//!
//! Linux only (`/proc`), like the rest of the drill's process handling.

use std::ffi::OsString;
use std::time::Duration;

/// What the start gate (below) exits with when the drill died before letting the command go.
pub const GATE_EXIT: i32 = 125;

/// A command behind a start gate: `sh` reads one line from its standard input and only when
/// it is `go` replaces itself (same PID, same process group) with `program args…`, whose
/// standard input is then `/dev/null`. The drill writes `go` after the command's PID is in the
/// journal; if the drill dies first, the pipe closes and the command never runs. So no command
/// acts without a record a resumed drill can find.
pub fn gated(program: &OsString, args: &[OsString]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "IFS= read -r go && [ \"$go\" = go ] || exit {GATE_EXIT}; exec \"$@\" </dev/null"
        ))
        .arg("cutover-drill-step")
        .arg(program)
        .args(args);
    c
}

/// A process's state letter and start time (clock ticks after boot) and its process group,
/// from `/proc/PID/stat`; `None` when there is no such process.
fn stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses: the
    // fields after it start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field 5 is the process group, field 22 the start time.
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, pgrp, start))
}

/// The start time of process `pid` (clock ticks after boot), for the journal.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, _, t)| t)
}

/// Whether the process group a drill started (leader `pgid`, which started at `start_time`)
/// may still run. The leader alive with the same start time: yes. The leader's PID held by a
/// process that started at another time: no (Linux does not reuse a PID while a process group
/// of that number exists, so the group is gone). No leader: yes while any live (not zombie)
/// process is still in the group.
pub fn group_alive(pgid: i32, start: u64) -> bool {
    if pgid <= 1 {
        return false;
    }
    match stat(pgid) {
        Some((_, _, t)) if t != start => return false,
        Some((state, _, _)) if !matches!(state, 'Z' | 'X') => return true,
        _ => {}
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat)
        .any(|(state, pgrp, _)| pgrp == pgid && !matches!(state, 'Z' | 'X'))
}

/// Sends `sig` to the process group `pgid`, if it is still the drill's (see [`group_alive`]).
pub fn signal_group(pgid: i32, start: u64, sig: i32) {
    if group_alive(pgid, start) {
        // SAFETY: signals a process group this drill created (process_group(0)), checked to
        // be the same group just before.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Polls until the group has ended, every `poll`; returns early (false) when `stop` resolves.
pub async fn wait_group(
    pgid: i32,
    start: u64,
    poll: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(stop);
    loop {
        if !group_alive(pgid, start) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = &mut stop => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_alive_until_its_last_process_ends_and_a_reused_pid_is_not_ours() {
        use std::io::BufRead as _;
        use std::os::unix::process::CommandExt as _;
        // The leader starts a member, says its PID, and ends when its input closes: the group
        // lives on in the member.
        let mut leader = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30 >/dev/null & echo $!; read _")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let start = start_time(pgid).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(leader.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let member: i32 = line.trim().parse().unwrap();
        assert!(group_alive(pgid, start));
        assert!(
            !group_alive(pgid, start + 1),
            "a leader with another start time is another process"
        );
        drop(leader.stdin.take());
        leader.wait().unwrap();
        assert!(group_alive(pgid, start), "the member {member} still runs");
        signal_group(pgid, start, libc::SIGKILL);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while group_alive(pgid, start) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!group_alive(pgid, start), "member {member} ended");
        assert!(!group_alive(0, 0));
        assert!(start_time(i32::MAX).is_none());
    }
}
