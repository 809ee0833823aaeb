//! The runbook: a TOML file of steps, each with a DRI, a reviewer, an estimate, what to run
//! and how to undo it. Everything is checked before anything runs; every problem is reported
//! with the line it is on and the step it belongs to.
//!
//! ```toml
//! [runbook]
//! name = "orders cutover"
//! announce = ["stdout", "webhook:${SLACK_WEBHOOK}"]
//! window = ["freeze-writes", "unfreeze"]
//!
//! [vars]
//! SOURCE = "mysql://checker@10.0.0.1:3306"
//!
//! [[step]]
//! id = "freeze-writes"
//! title = "Freeze writes on the source"
//! dri = "alice"
//! reviewer = "bob"
//! expect = "5m"
//! run = "./freeze.sh"
//! rollback = "./unfreeze.sh"
//! ```
//!
//! `${NAME}` in `run`, `check`, `rollback`, `announce` and `[vars]` values is replaced by the
//! variable of that name from `[vars]`, else from the environment; a name defined in neither
//! is an error. Other `$` forms (`$HOME`, `${X:-y}`) are left to the shell.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::duration::parse_duration;

/// A problem with a runbook, located as precisely as the problem allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runbook {}{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), step.as_ref().map(|s| format!(": step `{s}`")).unwrap_or_default())]
pub struct RunbookError {
    pub path: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    pub step: Option<String>,
    pub message: String,
}

/// Where announcements go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// One line per announcement on standard output.
    Stdout,
    /// One line per announcement on standard error: where a run whose standard output is
    /// JSON (`--format json`) sends what the runbook asked for on standard output.
    Stderr,
    /// A Slack-compatible incoming webhook: `POST {"text": ...}`.
    Webhook(String),
}

impl Announce {
    /// How the target is named in logs: a webhook by its scheme and host only (the path of an
    /// incoming webhook is its secret).
    pub fn label(&self) -> String {
        match self {
            Announce::Stdout => "stdout".into(),
            Announce::Stderr => "stderr".into(),
            Announce::Webhook(url) => {
                let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                let host = host.rsplit('@').next().unwrap_or(host);
                let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("http");
                format!("webhook {scheme}://{host}")
            }
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A shell command (`sh -c`), with the drill's variables in its environment.
    Shell(String),
    /// A cutover command (`diff --tables app.*`), run by the cutover binary itself; it passes
    /// on exit 0.
    Check(Vec<String>),
    /// Done by hand; the step ends when its DRI says so (`cutover drill ack`).
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// Who may approve (never the step's DRI).
    pub by: Vec<String>,
    /// How many of them must.
    pub min: usize,
    /// How long to wait; a timeout is a refusal, never an approval.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub title: String,
    /// Who acts.
    pub dri: String,
    /// Who checks.
    pub reviewer: String,
    pub expect: Duration,
    pub action: Action,
    /// Failure stops the drill and rolls back the completed steps.
    pub gate: bool,
    pub approvals: Option<Approvals>,
    pub rollback: Option<String>,
    /// `false`: the step only reads, so it also runs in a dry run.
    pub side_effects: bool,
    pub timeout: Duration,
    pub continue_on_error: bool,
    /// The line of its `[[step]]` table.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    pub name: String,
    pub path: PathBuf,
    /// SHA-256 of the file: a resumed drill refuses a runbook that changed.
    pub hash: String,
    pub announce: Vec<Announce>,
    /// The steps whose span the report measures as the window (e.g. write downtime): from the
    /// start of the first to the end of the second.
    pub window: Option<(String, String)>,
    /// `[vars]`, expanded; shell steps get them as environment variables.
    pub vars: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

impl Runbook {
    /// Checks every `check` step's command line, arguments included, with `parse_command`
    /// (the cutover binary's own argument parser: this crate cannot know it), so a typo in a
    /// later step is found before the first step runs.
    pub fn check_commands(
        &self,
        parse_command: &dyn Fn(&[String]) -> Result<(), RefusedCheck>,
    ) -> Result<(), RunbookError> {
        for s in &self.steps {
            if let Action::Check(words) = &s.action {
                parse_command(words).map_err(|refused| RunbookError {
                    path: self.path.clone(),
                    line: Some(s.line),
                    step: Some(s.id.clone()),
                    message: format!("check: {refused}"),
                })?;
            }
        }
        Ok(())
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// A `check` line the command-line parser refused (the binary parses it as its own
/// arguments), with its reason: the command, flag or value it does not know.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RefusedCheck(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    runbook: Option<Spanned<RawHeader>>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    /// Absent: stdout. `[]`: nowhere.
    announce: Option<Vec<Spanned<String>>>,
    window: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    title: String,
    dri: Spanned<String>,
    reviewer: Spanned<String>,
    expect: Spanned<String>,
    run: Option<Spanned<String>>,
    check: Option<Spanned<String>>,
    #[serde(default)]
    manual: bool,
    #[serde(default)]
    gate: bool,
    approvals: Option<Spanned<RawApprovals>>,
    rollback: Option<Spanned<String>>,
    side_effects: Option<bool>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    continue_on_error: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    by: Vec<String>,
    min: Option<Spanned<i64>>,
    timeout: Spanned<String>,
}

/// Reads and checks a runbook file. The environment fills variables `[vars]` does not define.
pub fn load(path: &Path) -> Result<Runbook, RunbookError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunbookError {
        path: path.to_path_buf(),
        line: None,
        step: None,
        message: format!("cannot read it: {e}"),
    })?;
    parse(path, &text, &|name| std::env::var(name).ok())
}

/// Checks a runbook's text. `env` answers variables that `[vars]` does not define.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Runbook, RunbookError> {
    let err =
        |span: Option<std::ops::Range<usize>>, step: Option<&str>, message: String| RunbookError {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            step: step.map(str::to_string),
            message,
        };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        err(
            e.span(),
            None,
            e.message().trim().replace('\n', " ").to_string(),
        )
    })?;
    let header = raw
        .runbook
        .ok_or_else(|| err(None, None, "no [runbook] table (name, announce)".into()))?;
    let header_span = header.span();
    let header = header.into_inner();
    let name = header.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(err(
            Some(header.name.span()),
            None,
            "the runbook's name is empty".into(),
        ));
    }

    // Variables: [vars] first (each may use the environment and the vars before it).
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &raw.vars {
        if !valid_var_name(k) {
            return Err(err(
                Some(v.span()),
                None,
                format!(
                    "`{k}` is not a variable name (letters, digits, _; not starting with a digit)"
                ),
            ));
        }
        let expanded = expand(v.get_ref(), &|n| vars.get(n).cloned().or_else(|| env(n)))
            .map_err(|m| err(Some(v.span()), None, format!("[vars] {k}: {m}")))?;
        vars.insert(k.clone(), expanded);
    }
    let lookup = |n: &str| vars.get(n).cloned().or_else(|| env(n));

    let mut announce = Vec::new();
    if header.announce.is_none() {
        announce.push(Announce::Stdout);
    }
    for a in header.announce.iter().flatten() {
        let text_a = expand(a.get_ref(), &lookup)
            .map_err(|m| err(Some(a.span()), None, format!("announce: {m}")))?;
        let target = if text_a.trim() == "stdout" {
            Announce::Stdout
        } else if let Some(url) = text_a.trim().strip_prefix("webhook:") {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() <= "https://".len()
            {
                return Err(err(
                    Some(a.span()),
                    None,
                    "announce: a webhook is `webhook:https://…` (an http or https URL)".into(),
                ));
            }
            Announce::Webhook(url.to_string())
        } else {
            return Err(err(
                Some(a.span()),
                None,
                format!(
                    "announce: `{}` is not `stdout` or `webhook:URL`",
                    a.get_ref()
                ),
            ));
        };
        announce.push(target);
    }

    if raw.step.is_empty() {
        return Err(err(
            Some(header_span),
            None,
            "the runbook has no [[step]]".into(),
        ));
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut steps = Vec::new();
    for s in raw.step {
        let span = s.span();
        let s = s.into_inner();
        let id = s.id.get_ref().trim().to_string();
        let at = |sp: std::ops::Range<usize>, m: String| err(Some(sp), Some(&id), m);
        if !valid_id(&id) {
            return Err(err(
                Some(s.id.span()),
                None,
                format!(
                    "step id `{}` must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
                    s.id.get_ref()
                ),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(at(s.id.span(), "duplicate step id".into()));
        }
        for (what, v) in [("dri", &s.dri), ("reviewer", &s.reviewer)] {
            if v.get_ref().trim().is_empty() {
                return Err(at(
                    v.span(),
                    format!("`{what}` is empty: every step has one"),
                ));
            }
        }
        let dri = s.dri.get_ref().trim().to_string();
        let reviewer = s.reviewer.get_ref().trim().to_string();
        let expect = parse_duration(s.expect.get_ref())
            .map_err(|m| at(s.expect.span(), format!("expect: {m}")))?;
        let timeout = match &s.timeout {
            Some(t) => {
                parse_duration(t.get_ref()).map_err(|m| at(t.span(), format!("timeout: {m}")))?
            }
            None => expect * 3,
        };
        let exp = |v: &Spanned<String>, what: &str| {
            expand(v.get_ref(), &lookup).map_err(|m| at(v.span(), format!("{what}: {m}")))
        };
        let action = match (&s.run, &s.check, s.manual) {
            (Some(r), None, false) => {
                let cmd = exp(r, "run")?;
                if cmd.trim().is_empty() {
                    return Err(at(r.span(), "`run` is empty".into()));
                }
                Action::Shell(cmd)
            }
            (None, Some(c), false) => {
                let words = split_words(&exp(c, "check")?)
                    .map_err(|m| at(c.span(), format!("check: {m}")))?;
                match words.first().map(String::as_str) {
                    None => return Err(at(c.span(), "`check` is empty: give a cutover command such as `diff --tables app.*`".into())),
                    Some("drill") => return Err(at(c.span(), "check: a drill cannot run a drill".into())),
                    Some(w) if w.starts_with('-') => return Err(at(c.span(), format!("check: `{w}` is a flag; start with the cutover command (check, diff, verify, replay)"))),
                    _ => {}
                }
                Action::Check(words)
            }
            (None, None, true) => Action::Manual,
            (None, None, false) => {
                return Err(err(
                    Some(span),
                    Some(&id),
                    "the step does nothing: give `run`, `check` or `manual = true`".into(),
                ))
            }
            _ => {
                return Err(err(
                    Some(span),
                    Some(&id),
                    "give only one of `run`, `check` and `manual = true`".into(),
                ))
            }
        };
        let approvals = match s.approvals {
            None => None,
            Some(a) => {
                let a_span = a.span();
                let a = a.into_inner();
                let mut by: Vec<String> = Vec::new();
                for n in a.by {
                    let n = n.trim().to_string();
                    if n.is_empty() {
                        return Err(at(a_span, "approvals: an empty name in `by`".into()));
                    }
                    if n == dri {
                        return Err(at(a_span, format!("approvals: `{n}` is the step's DRI, who cannot approve their own step")));
                    }
                    if !by.contains(&n) {
                        by.push(n);
                    }
                }
                let min = match &a.min {
                    None => 1,
                    Some(m) => {
                        let v = *m.get_ref();
                        if v < 1 || v as usize > by.len() {
                            return Err(at(
                                m.span(),
                                format!(
                                    "approvals: min = {v}, but there are {} approvers in `by`",
                                    by.len()
                                ),
                            ));
                        }
                        v as usize
                    }
                };
                if by.is_empty() {
                    return Err(at(a_span, "approvals: `by` names nobody".into()));
                }
                let timeout = parse_duration(a.timeout.get_ref())
                    .map_err(|m| at(a.timeout.span(), format!("approvals timeout: {m}")))?;
                Some(Approvals { by, min, timeout })
            }
        };
        let rollback = match &s.rollback {
            Some(r) => {
                let cmd = exp(r, "rollback")?;
                if cmd.trim().is_empty() {
                    return Err(at(r.span(), "`rollback` is empty".into()));
                }
                Some(cmd)
            }
            None => None,
        };
        let title = s.title.trim().to_string();
        steps.push(Step {
            title: if title.is_empty() { id.clone() } else { title },
            id,
            dri,
            reviewer,
            expect,
            action,
            gate: s.gate,
            approvals,
            rollback,
            side_effects: s.side_effects.unwrap_or(true),
            timeout,
            continue_on_error: s.continue_on_error,
            line: line_of(text, span.start),
        });
    }

    let window = match header.window {
        None => None,
        Some(w) => {
            let wspan = w.span();
            let w = w.into_inner();
            if w.len() != 2 {
                return Err(err(
                    Some(wspan),
                    None,
                    "window: name two steps, [first, last]".into(),
                ));
            }
            let pos = |id: &str| steps.iter().position(|s| s.id == id);
            match (pos(&w[0]), pos(&w[1])) {
                (Some(a), Some(b)) if a <= b => Some((w[0].clone(), w[1].clone())),
                (Some(_), Some(_)) => {
                    return Err(err(
                        Some(wspan),
                        None,
                        format!("window: `{}` comes after `{}`", w[0], w[1]),
                    ))
                }
                (None, _) => {
                    return Err(err(
                        Some(wspan),
                        None,
                        format!("window: no step `{}`", w[0]),
                    ))
                }
                (_, None) => {
                    return Err(err(
                        Some(wspan),
                        None,
                        format!("window: no step `{}`", w[1]),
                    ))
                }
            }
        }
    };

    Ok(Runbook {
        name,
        path: path.to_path_buf(),
        hash: hash(text),
        announce,
        window,
        vars,
        steps,
    })
}

/// SHA-256 of the runbook's text, hex.
pub fn hash(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_var_name(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `${NAME}` that neither `[vars]` nor the environment defines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`${{{0}}}` is defined neither in [vars] nor in the environment")]
pub struct UndefinedVar(pub String);

/// Why a command line could not be split into words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadWords {
    #[error("a ' quote is not closed")]
    UnclosedSingleQuote,
    #[error("a \" quote is not closed")]
    UnclosedDoubleQuote,
    #[error("a backslash ends the command")]
    TrailingBackslash,
}

/// Replaces `${NAME}` by `lookup(NAME)`; a name nobody defines is an error. Anything else,
/// including `$NAME` and `${NAME:-default}`, is left as written.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, UndefinedVar> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if valid_var_name(&after[..j]) => {
                let name = &after[..j];
                let v = lookup(name).ok_or_else(|| UndefinedVar(name.to_string()))?;
                out.push_str(&v);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a command line into words like a shell would for simple cases: whitespace
/// separates, '…' keeps everything, "…" keeps everything but `\"` and `\\`, a backslash
/// outside quotes escapes the next character. No expansion of any kind.
pub fn split_words(s: &str) -> Result<Vec<String>, BadWords> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(BadWords::UnclosedSingleQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(BadWords::UnclosedDoubleQuote),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(BadWords::UnclosedDoubleQuote),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return Err(BadWords::TrailingBackslash),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests;
