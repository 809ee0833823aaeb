//! `tcpdump -i lo` of one port, for the tests that compare a packet capture with what the
//! clients did: started and listening, then stopped once the capture file holds what the test
//! waits for (tcpdump writes every packet as it comes, `-U`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::wait_for;

/// A running `tcpdump -i lo -U -w FILE tcp port PORT`.
pub struct Tcpdump {
    child: Child,
    path: PathBuf,
}

impl Tcpdump {
    /// Started (with `extra` options) and listening, or `None` when tcpdump cannot run here,
    /// with the reason printed after `skipped` (what the test leaves out).
    pub fn start(port: u16, path: &Path, extra: &[&str], skipped: &str) -> Option<Tcpdump> {
        let spawned = Command::new("tcpdump")
            .args(["-i", "lo", "-U", "-n", "-s", "0"])
            .args(extra)
            .args(["-Z", "root", "-w"])
            .arg(path)
            .arg(format!("tcp port {port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{skipped}: tcpdump cannot be started ({e}); scripts/test installs it");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take()?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // tcpdump says "listening on lo" once the capture is active.
        let until = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        while Instant::now() < until {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("listening on") => {
                    return Some(Tcpdump {
                        child,
                        path: path.to_path_buf(),
                    })
                }
                Ok(line) => said.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "{skipped}: tcpdump cannot capture here: {}",
            said.join(" / ")
        );
        None
    }

    /// The capture file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits (polling, up to `deadline`) until `done` says the capture file holds what the
    /// test needs, then stops tcpdump.
    pub async fn stop_when(mut self, what: &str, deadline: Duration, done: impl Fn(&Path) -> bool) {
        let path = self.path.clone();
        wait_for(what, deadline, || {
            let done = done(&path);
            async move { done }
        })
        .await;
        // SAFETY: kill(2) on a child this test spawned and still owns.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
