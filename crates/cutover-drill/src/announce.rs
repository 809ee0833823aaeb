//! Announcements: every start, finish, failure, rollback and wait is said where the team
//! looks (standard output, Slack-compatible webhooks). They are never load-bearing: each
//! target has its own queue and task, so a slow or failing webhook delays nothing; a webhook
//! that errors is retried with exponential backoff and, when it keeps failing, reported as a
//! warning (journal and stderr) and the drill goes on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::runbook::Announce;

/// Retry policy of webhooks.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts per announcement (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each next one.
    pub first: Duration,
    pub max: Duration,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            attempts: 5,
            first: Duration::from_millis(250),
            max: Duration::from_secs(4),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Where warnings go (the journal and stderr, in the executor).
pub type WarnFn = Arc<dyn Fn(String) + Send + Sync>;

pub struct Announcer {
    queues: Vec<mpsc::UnboundedSender<String>>,
    tasks: Vec<JoinHandle<()>>,
    /// Per target: its label and how many announcements wait in its queue.
    pending: Vec<(String, Arc<AtomicUsize>)>,
    warn: WarnFn,
}

impl Announcer {
    pub fn start(targets: &[Announce], backoff: Backoff, warn: WarnFn) -> Announcer {
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        let mut pending = Vec::new();
        for t in targets {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            queues.push(tx);
            let left = Arc::new(AtomicUsize::new(0));
            pending.push((t.label(), left.clone()));
            let t = t.clone();
            let warn = warn.clone();
            tasks.push(tokio::spawn(async move {
                // After a message gave up, the next ones try once until one gets through, so a
                // dead webhook does not hold the end of the drill for minutes.
                let mut healthy = true;
                while let Some(text) = rx.recv().await {
                    match &t {
                        Announce::Stdout => {
                            use std::io::Write as _;
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "{text}");
                            let _ = out.flush();
                        }
                        Announce::Stderr => {
                            use std::io::Write as _;
                            let mut err = std::io::stderr().lock();
                            let _ = writeln!(err, "{text}");
                            let _ = err.flush();
                        }
                        Announce::Webhook(url) => {
                            let attempts = if healthy { backoff.attempts.max(1) } else { 1 };
                            match post_with_retries(url, &text, attempts, backoff).await {
                                Ok(()) => healthy = true,
                                Err(e) => {
                                    healthy = false;
                                    warn(format!(
                                        "announcement not delivered to {} after {attempts} attempt{}: {e}",
                                        t.label(),
                                        if attempts == 1 { "" } else { "s" }
                                    ));
                                }
                            }
                        }
                    }
                    left.fetch_sub(1, Ordering::Relaxed);
                }
            }));
        }
        Announcer {
            queues,
            tasks,
            pending,
            warn,
        }
    }

    /// Queues `text` for every target; returns at once.
    pub fn say(&self, text: &str) {
        for (q, (_, left)) in self.queues.iter().zip(&self.pending) {
            left.fetch_add(1, Ordering::Relaxed);
            let _ = q.send(text.to_string());
        }
    }

    /// Delivers what is queued (waiting at most `deadline`) and stops; what could not be
    /// delivered by then is a warning.
    pub async fn finish(self, deadline: Duration) {
        drop(self.queues);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(deadline, all).await.is_err() {
            for (label, left) in &self.pending {
                let n = left.load(Ordering::Relaxed);
                if n > 0 {
                    (self.warn)(format!(
                        "{n} announcement{} to {label} not delivered when the drill ended",
                        if n == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

async fn post_with_retries(
    url: &str,
    text: &str,
    attempts: u32,
    backoff: Backoff,
) -> Result<(), String> {
    let body = serde_json::json!({ "text": text }).to_string();
    let mut wait = backoff.first;
    let mut last = String::new();
    for i in 0..attempts {
        if i > 0 {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(backoff.max);
        }
        let (u, b, t) = (url.to_string(), body.clone(), backoff.request_timeout);
        match tokio::task::spawn_blocking(move || post(&u, &b, t)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// One POST of a JSON body; any answer but 2xx is an error. Errors never include the URL (an
/// incoming webhook's path is its secret).
fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| scrub(&e.to_string(), url))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

fn scrub(msg: &str, url: &str) -> String {
    msg.replace(url, "<webhook>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test(flavor = "multi_thread")]
    async fn undelivered_announcements_are_a_warning_at_the_end() {
        // A webhook that accepts connections and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret", l.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
        let w = warnings.clone();
        let backoff = Backoff {
            attempts: 1,
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
            request_timeout: Duration::from_secs(1),
        };
        let a = Announcer::start(
            &[Announce::Webhook(url)],
            backoff,
            Arc::new(move |m| w.lock().unwrap().push(m)),
        );
        a.say("one");
        a.say("two");
        a.finish(Duration::from_millis(300)).await;
        let w = warnings.lock().unwrap().clone();
        assert!(
            w.iter().any(
                |m| m.contains("2 announcements to webhook http://127.0.0.1")
                    && m.contains("not delivered when the drill ended")
            ),
            "{w:?}"
        );
        assert!(w.iter().all(|m| !m.contains("secret")), "{w:?}");
    }
}
