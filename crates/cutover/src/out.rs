//! The one place the binary writes to its standard output and standard error.
//!
//! A reader that goes away (`cutover diff … | head -1`, `| true`, a pager quit early) closes
//! the pipe: that is the reader's choice, not a failure of the command. Rust ignores SIGPIPE,
//! so the write fails with `EPIPE`; here that failure is swallowed, later output to the same
//! stream is dropped, and the command ends with its own exit code. `print!` and friends
//! would panic instead (exit 101), so the binary uses the macros `out!`, `outln!`, `err!`
//! and `errln!` (defined in `main.rs`) and [`text`], which all come here.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a closed pipe silences stdout for the rest of the run. Other write
/// errors (a full disk behind a redirection) are returned.
pub fn stdout(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    match o.write_fmt(args).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// Writes to stderr; any failure is ignored (there is nowhere left to report it).
pub fn stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    // Progress bars are lifted out of the way of the line, then drawn again below it.
    crate::progress::suspend(|| {
        let mut e = std::io::stderr().lock();
        if e.write_fmt(args).and_then(|_| e.flush()).is_err() {
            STDERR_CLOSED.store(true, Ordering::Relaxed);
        }
    });
}

/// A whole text (a report) to stdout.
pub fn text(s: &str) -> std::io::Result<()> {
    stdout(format_args!("{s}"))
}

/// Checks, before any work, that the directory `dir` (created when missing) takes new files:
/// a problem with an output is found in a second, not after an hour of comparing.
pub fn writable_dir(dir: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot create it: {e}", dir.display()))?;
    let probe = dir.join(format!(".cutover-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot write in it: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks, before any work, that the file `path` can be written: its directory exists and
/// takes new files. The file itself is not created (nor an older one touched).
pub fn writable_file(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(anyhow::anyhow!(
            "{flag} {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(anyhow::anyhow!("{flag} {}: is a directory", path.display()));
    }
    let probe = dir.join(format!(".cutover-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot write in {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The run: what every JSON document, report file and provenance block says about it.

/// The command being run, once per process: set by `main` before the command starts.
struct Invocation {
    /// `diff`, `drill status`, …
    command: String,
    started: std::time::SystemTime,
    argv_redacted: Vec<String>,
    options: Vec<(String, String)>,
}

static INVOCATION: std::sync::OnceLock<Invocation> = std::sync::OnceLock::new();

/// Records the command about to run, from the parsed arguments: its name, the time, the
/// command line and the options typed, with every password removed.
pub fn begin(matches: &clap::ArgMatches, cmd: &clap::Command) {
    // Built, the subcommands carry the global flags they accept (`--config`, `--dir`).
    let mut built = cmd.clone();
    built.build();
    let mut names = Vec::new();
    let (mut m, mut c) = (matches, &built);
    while let Some((name, sub)) = m.subcommand() {
        names.push(name.to_string());
        match c.find_subcommand(name) {
            Some(next) => c = next,
            None => break,
        }
        m = sub;
    }
    let mut options = Vec::new();
    for arg in c.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_positional() || m.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
        {
            continue;
        }
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        let value = if arg.get_action().takes_values() {
            let raw: Vec<String> = m
                .get_raw(id)
                .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            redact_value(&flag, &raw.join(","))
        } else {
            String::new()
        };
        options.push((flag, value));
    }
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = INVOCATION.set(Invocation {
        command: names.join(" "),
        started: std::time::SystemTime::now(),
        argv_redacted: redact_argv(&argv),
        options,
    });
}

fn invocation() -> Option<&'static Invocation> {
    INVOCATION.get()
}

/// Whether a flag's value is a secret (`--password`, `--token`, …; a file holding one is
/// not).
fn secret_flag(flag: &str) -> bool {
    let f = flag.trim_start_matches('-').to_ascii_lowercase();
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|w| f.contains(w))
        && !f.ends_with("-file")
}

/// A flag's value as it may be shown: `***` for a secret, DSNs without their password.
fn redact_value(flag: &str, value: &str) -> String {
    if secret_flag(flag) {
        return "***".to_string();
    }
    redact_dsns(value)
}

/// Every DSN in `s` (comma-separated lists too) with its password replaced by `***`.
fn redact_dsns(s: &str) -> String {
    if !s.contains("://") {
        return s.to_string();
    }
    s.split(',')
        .map(|part| {
            if !part.contains("://") {
                return part.to_string();
            }
            match cutover_core::Endpoint::parse(part) {
                Ok(e) => e.redacted(),
                // Not a DSN this binary reads, but it may still hold a password: keep only
                // the scheme and what follows the last `@`.
                Err(_) => match (part.split_once("://"), part.rfind('@')) {
                    (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &part[at + 1..]),
                    _ => part.to_string(),
                },
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The command line with every secret removed: the value after (or in `=` with) a secret
/// flag, and the password of every DSN.
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut secret_next = false;
    for a in argv {
        if secret_next {
            out.push("***".to_string());
            secret_next = false;
            continue;
        }
        if a.starts_with("--") {
            if let Some((flag, value)) = a.split_once('=') {
                out.push(format!("{flag}={}", redact_value(flag, value)));
                continue;
            }
            secret_next = secret_flag(a);
            out.push(a.clone());
            continue;
        }
        out.push(redact_dsns(a));
    }
    out
}

/// What kind of verdict a command gives: a comparison says `same` or `differences`, the
/// readiness check `ok` or `findings`, a drill run `ok` or `failed`, everything else `ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Compare,
    Check,
    Other,
}

fn kind(command: &str) -> Kind {
    match command {
        "diff" | "verify" | "replay" | "probe isolation" => Kind::Compare,
        "check" => Kind::Check,
        _ => Kind::Other,
    }
}

/// The verdict word of a run that ends with `exit_code` (see the README's "JSON output"):
/// `same`, `differences`, `ok`, `findings`, `failed`, `error` or `interrupted`.
pub fn verdict(command: &str, exit_code: u8) -> &'static str {
    match (exit_code, kind(command)) {
        (0, Kind::Compare) => "same",
        (0, _) => "ok",
        (1, Kind::Compare) => "differences",
        (1, Kind::Check) => "findings",
        (1, Kind::Other) => "failed",
        (130, _) => "interrupted",
        _ => "error",
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The provenance of this run, ending now with `exit_code`.
pub fn provenance(exit_code: u8) -> cutover_report::Provenance {
    let command = invocation().map(|i| i.command.as_str()).unwrap_or_default();
    provenance_with(verdict(command, exit_code))
}

/// The provenance of this run with a verdict of its own (a report the demo writes is a
/// diff's, a replay's, a drill's).
fn provenance_with(verdict: &str) -> cutover_report::Provenance {
    let now = std::time::SystemTime::now();
    let (command, started, argv, options) = match invocation() {
        Some(i) => (
            i.command.clone(),
            i.started,
            i.argv_redacted.clone(),
            i.options.clone(),
        ),
        None => (String::new(), now, Vec::new(), Vec::new()),
    };
    cutover_report::Provenance {
        verdict: verdict.to_string(),
        command,
        argv_redacted: argv,
        started_at: rfc3339(started),
        finished_at: rfc3339(now),
        version: env!("CARGO_PKG_VERSION").to_string(),
        options,
    }
}

/// The JSON document of this run: the common fields (`version`, `command`, `started_at`,
/// `finished_at`, `verdict`, `exit_code`, `argv`), then the command's own fields (`body`,
/// an object), with every duration in milliseconds (see [`durations_in_ms`]).
pub fn envelope(exit_code: u8, body: serde_json::Value) -> serde_json::Value {
    envelope_of(provenance(exit_code), exit_code, body)
}

fn envelope_of(
    p: cutover_report::Provenance,
    exit_code: u8,
    body: serde_json::Value,
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut doc = Map::new();
    doc.insert("version".into(), json!(p.version));
    doc.insert("command".into(), json!(p.command));
    doc.insert("started_at".into(), json!(p.started_at));
    doc.insert("finished_at".into(), json!(p.finished_at));
    doc.insert("verdict".into(), json!(p.verdict));
    doc.insert("exit_code".into(), json!(exit_code));
    doc.insert("argv".into(), json!(p.argv_redacted));
    let mut body = body;
    durations_in_ms(&mut body);
    match body {
        Value::Object(fields) => {
            for (k, v) in fields {
                // The envelope's fields are the run's; a library's own `version` is
                // cutover's too.
                doc.entry(k).or_insert(v);
            }
        }
        Value::Null => {}
        other => {
            doc.insert("result".into(), other);
        }
    }
    Value::Object(doc)
}

/// Prints this run's JSON document on stdout.
pub fn json(exit_code: u8, body: serde_json::Value) -> std::io::Result<()> {
    let doc = envelope(exit_code, body);
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    stdout(format_args!("{text}\n"))
}

/// The body of a JSON document from a serializable report.
pub fn body<T: serde::Serialize + ?Sized>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// One unit for every duration: a field `NAME_s`, `NAME_secs` or `NAME_seconds` becomes
/// `NAME_ms` (times 1000), and `NAME_us` becomes `NAME_ms` (divided by 1000), at any depth;
/// timestamps (`ts_us`, `NAME_ts_us`) stay as they are. Libraries keep their natural units;
/// what a user reads says milliseconds everywhere.
pub fn durations_in_ms(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Array(items) => items.iter_mut().for_each(durations_in_ms),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let mut renamed = serde_json::Map::with_capacity(map.len());
            for k in keys {
                let Some(mut value) = map.remove(&k) else {
                    continue;
                };
                durations_in_ms(&mut value);
                let unit = ["_seconds", "_secs", "_s"]
                    .iter()
                    .find_map(|s| k.strip_suffix(s).map(|stem| (stem, 1000.0)))
                    .or_else(|| {
                        (!k.ends_with("ts_us"))
                            .then(|| k.strip_suffix("_us").map(|stem| (stem, 0.001)))
                            .flatten()
                    });
                match unit {
                    Some((stem, factor)) if is_numbers(&value) && !stem.is_empty() => {
                        let name = format!("{stem}_ms");
                        if map.contains_key(&name) || renamed.contains_key(&name) {
                            renamed.insert(k, value);
                        } else {
                            renamed.insert(name, scale(value, factor));
                        }
                    }
                    _ => {
                        renamed.insert(k, value);
                    }
                }
            }
            *map = renamed;
        }
        _ => {}
    }
}

fn is_numbers(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(_) | serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.iter().all(is_numbers),
        _ => false,
    }
}

fn scale(v: serde_json::Value, factor: f64) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0) * factor;
            // Whole milliseconds print as integers; finer ones keep three decimals (µs).
            let r = (x * 1000.0).round() / 1000.0;
            if r.fract() == 0.0 && r.abs() < 9.0e15 {
                Value::from(r as i64)
            } else {
                serde_json::Number::from_f64(r)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| scale(x, factor)).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// --out DIR: the one writer of report files.

/// One file of `--out DIR`.
pub struct OutFile {
    pub name: String,
    pub body: Vec<u8>,
    /// Holds row values (diff rows, verify mismatches, replay answers): readable by its
    /// owner only (0600); else 0644.
    pub private: bool,
}

/// A command's report files: `STEM.json` (the run's JSON document, as `--format json`
/// prints it), and with a document `STEM.md` and `STEM.html`, each opening with the run's
/// provenance.
pub fn report_files(
    stem: &str,
    exit_code: u8,
    body: serde_json::Value,
    doc: Option<cutover_report::Document>,
    private: bool,
) -> Vec<OutFile> {
    // The verdict is the report's: `report` is a diff's.
    let command = match stem {
        "report" => "diff",
        "probe" => "probe isolation",
        other => other,
    };
    let p = provenance_with(verdict(command, exit_code));
    let mut json =
        serde_json::to_string_pretty(&envelope_of(p.clone(), exit_code, body)).unwrap_or_default();
    json.push('\n');
    let mut files = vec![OutFile {
        name: format!("{stem}.json"),
        body: json.into_bytes(),
        private,
    }];
    if let Some(mut doc) = doc {
        p.apply(&mut doc);
        files.push(OutFile {
            name: format!("{stem}.md"),
            body: doc.markdown().into_bytes(),
            private,
        });
        files.push(OutFile {
            name: format!("{stem}.html"),
            body: doc.html().into_bytes(),
            private,
        });
    }
    files
}

/// Writes `files` into `dir` (created when missing). Each goes to a temporary file in `dir`,
/// is flushed to disk with its final permissions, then renamed over its name: a reader never
/// sees half a file, and a file with row values is never readable by others, not even for
/// a moment. Returns the paths written, in order.
pub fn write_out(
    dir: &std::path::Path,
    files: &[OutFile],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use cutover_core::file::{write_atomic, Readers};
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("--out {}: cannot create it: {e}", dir.display()))?;
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        let path = dir.join(&f.name);
        let readers = if f.private {
            Readers::Owner
        } else {
            Readers::Everyone
        };
        write_atomic(&path, readers, |out| out.write_all(&f.body))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the files and says so on stderr (`reports written: …`); a failure is returned.
pub fn write_reports(
    dir: &std::path::Path,
    files: &[OutFile],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let written = write_out(dir, files)?;
    errln!(
        "reports written: {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(written)
}

/// Prints a finished command's report (its human text after the provenance, or with
/// `as_json` the JSON envelope) and writes `--out DIR` (`STEM.json`, `STEM.md`, `STEM.html`). A closed pipe is
/// the reader's choice, not an error; a report that cannot be written to DIR is said, but the
/// verdict stands.
pub fn print_and_write<T: serde::Serialize + ?Sized>(
    stem: &str,
    as_json: bool,
    out: Option<&std::path::Path>,
    exit_code: u8,
    report: &T,
    human: impl FnOnce() -> String,
    document: impl FnOnce() -> cutover_report::Document,
) -> anyhow::Result<()> {
    let printed = if as_json {
        json(exit_code, body(report))
    } else {
        text(&(provenance(exit_code).text() + &human()))
    };
    printed.map_err(|e| anyhow::anyhow!("writing the report: {e}"))?;
    if let Some(dir) = out {
        write_reports_or_warn(
            dir,
            &report_files(stem, exit_code, body(report), Some(document()), false),
        );
    }
    Ok(())
}

/// Like [`write_reports`], for commands whose verdict stands when a report cannot be
/// written: the failure is one warning line.
pub fn write_reports_or_warn(dir: &std::path::Path, files: &[OutFile]) {
    if let Err(e) = write_reports(dir, files) {
        errln!(
            "cutover: warning: the reports could not be written to {}: {e}",
            dir.display()
        );
    }
}

/// A deprecated spelling was used: one line on stderr naming the new one.
pub fn deprecated(old: &str, new: &str) {
    errln!("cutover: warning: {old} is deprecated; use {new}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_leave_the_command_line() {
        let argv: Vec<String> = [
            "cutover",
            "diff",
            "--source",
            "mysql://app:s3cret@db:3306/shop",
            "--target=mysql://root:hunter2@tidb:4000",
            "--password",
            "pw1",
            "--api-token=tk-123",
            "--source-password-file",
            "/run/pw",
            "--replica",
            "mysql://r:rpw@a,mysql://r:rpw2@b",
            "x://u:p@h",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = redact_argv(&argv).join(" ");
        for secret in ["s3cret", "hunter2", "pw1", "tk-123", "rpw"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("mysql://app:***@db:3306/shop"), "{r}");
        assert!(r.contains("--target=mysql://root:***@tidb:4000"), "{r}");
        assert!(r.contains("--source-password-file /run/pw"), "{r}");
        assert!(r.contains("x://***@h"), "{r}");
    }

    #[test]
    fn verdicts_follow_exit_codes() {
        assert_eq!(verdict("diff", 0), "same");
        assert_eq!(verdict("replay", 1), "differences");
        assert_eq!(verdict("check", 1), "findings");
        assert_eq!(verdict("check", 0), "ok");
        assert_eq!(verdict("drill run", 1), "failed");
        assert_eq!(verdict("sandbox status", 2), "error");
        assert_eq!(verdict("verify", 130), "interrupted");
    }

    #[test]
    fn out_dir_holds_every_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("run").join("out");
        let file = |name: &str, body: &str, private| OutFile {
            name: name.into(),
            body: body.as_bytes().to_vec(),
            private,
        };
        // Twice: the second run replaces the files of the first.
        for round in ["first", "second"] {
            let files = [
                file(
                    "report.json",
                    &format!("{{\"round\": \"{round}\"}}\n"),
                    true,
                ),
                file("report.md", &format!("# {round}\n"), true),
                file("report.html", "<p>public</p>\n", false),
                file(
                    "fix.sql",
                    "DELETE FROM `shop`.`orders` WHERE `id` = 7003;\n",
                    true,
                ),
            ];
            let written = write_out(&dir, &files).expect("written");
            let names: Vec<String> = written
                .iter()
                .map(|p| {
                    p.file_name()
                        .expect("a name")
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            assert_eq!(
                names,
                ["report.json", "report.md", "report.html", "fix.sql"]
            );
            assert!(written.iter().all(|p| p.parent() == Some(dir.as_path())));
            for (f, path) in files.iter().zip(&written) {
                assert_eq!(std::fs::read(path).expect("readable"), f.body);
            }
        }
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).expect("readable");
        assert_eq!(read("report.md"), "# second\n");
        // Files with row values are the owner's alone.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |n: &str| {
            std::fs::metadata(dir.join(n))
                .expect("there")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("report.json"), mode("report.html")), (0o600, 0o644));
        // No temporary file is left behind.
        let mut entries: Vec<String> = std::fs::read_dir(&dir)
            .expect("listable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            ["fix.sql", "report.html", "report.json", "report.md"]
        );
        // A directory that cannot be made is an error naming it.
        let blocked = tmp.path().join("a-file");
        std::fs::write(&blocked, "").expect("write");
        let err = write_out(&blocked.join("out"), &[]).expect_err("not a directory");
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn every_duration_in_milliseconds() {
        let mut v = json!({
            "elapsed_s": 1.5, "span_seconds": 2, "ttl_secs": null,
            "latency_us": 1234, "ts_us": 17, "first_ts_us": 5,
            "runs": [{"total_s": 0.0015, "actual_s": [1.0, null]}],
            "elapsed_ms": 3, "name_s": "text",
        });
        durations_in_ms(&mut v);
        assert_eq!(
            v,
            json!({
                "elapsed_ms": 3, "span_ms": 2000, "ttl_ms": null,
                "latency_ms": 1.234, "ts_us": 17, "first_ts_us": 5,
                "runs": [{"total_ms": 1.5, "actual_ms": [1000, null]}],
                "elapsed_s": 1.5, "name_s": "text",
            })
        );
    }
}
