//! Reports that read well at 400 tables: `check` groups findings by rule and cause so the one
//! that matters stays on the first screen; `diff` says "column `ts` differs in 400 tables"
//! before any table; `[accept]` and `--accept` report expected findings and differences apart
//! without changing the exit code; the fix SQL is commented, batched and split by table and
//! applies; the replay report ranks classes by time and count and explains slowdowns; and
//! the HTML report of every command, opened in headless Chromium, shows its verdict in the
//! first screen.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// `n` tables `t001`… in `db`, each made by `table(name)`, as one multi-statement batch.
fn many_tables(db: &str, n: usize, table: impl Fn(&str) -> String) -> String {
    let mut sql = format!("USE {db};");
    for i in 1..=n {
        sql.push_str(&table(&format!("t{i:03}")));
    }
    sql
}

/// The first `n` lines of a text.
fn head(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

fn check_human(db: &str, extra: &[&str]) -> Run {
    run(cutover()
        .args(["check", "--source", &dsn(Side::Source), "--databases", db])
        .args(extra))
}

#[tokio::test]
async fn check_over_400_tables_shows_one_grouped_finding_and_the_foreign_key_on_the_first_screen() {
    fresh_db("rep_chk").await;
    // The database's default collation (utf8mb4_general_ci on MariaDB) is not TiDB's
    // (utf8mb4_bin): every table with a text column is a collation change.
    let mut sql = many_tables("rep_chk", 400, |t| {
        format!("CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(20));")
    });
    sql.push_str(
        "CREATE TABLE parent (id INT PRIMARY KEY);
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id));
         CREATE TABLE nokey (a INT)",
    );
    exec(Side::Source, &sql).await;

    let r = check_human("rep_chk", &[]);
    assert_eq!(
        r.code, 1,
        "schema.no_key is an error:\n{}\n{}",
        r.stdout, r.stderr
    );
    let screen = head(&r.stdout, 40);
    assert!(
        screen.contains("[schema.collation_change] 400 tables: utf8mb4_general_ci -> utf8mb4_bin"),
        "the grouped finding on the first screen:\n{screen}"
    );
    assert!(
        screen.contains("[schema.foreign_key] rep_chk.child"),
        "the foreign-key warning on the first screen:\n{screen}"
    );
    assert!(screen.contains("[schema.no_key] rep_chk.nokey"), "{screen}");
    assert!(
        screen.find("ERRORS").unwrap() < screen.find("WARNINGS").unwrap(),
        "errors first:\n{screen}"
    );
    assert_eq!(
        r.stdout.matches("[schema.collation_change]").count(),
        1,
        "one group, not 400 lines:\n{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("e.g. rep_chk.t001, rep_chk.t002, rep_chk.t003 and 397 more"),
        "{}",
        r.stdout
    );

    // JSON: the groups next to the full list.
    let r = check_human("rep_chk", &["--format", "json"]);
    let v = r.json();
    let ours = |list: &Value, rule: &str| -> usize {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["rule"] == rule
                    && f["object"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("rep_chk."))
            })
            .count()
    };
    assert_eq!(ours(&v["findings"], "schema.collation_change"), 400);
    let group = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["rule"] == "schema.collation_change")
        .unwrap_or_else(|| panic!("no group: {:#}", v["groups"]));
    assert_eq!(group["count"], 400, "{group}");
    assert_eq!(group["cause"], "utf8mb4_general_ci -> utf8mb4_bin");
    assert_eq!(group["objects"], "tables");
    assert_eq!(group["examples"].as_array().unwrap().len(), 3);

    // Accepted from cutover.toml and from --accept: reported apart, not counted, and the
    // exit code follows what is left.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(
        &cfg,
        "[accept]\ncheck = [\"schema.collation_change:utf8mb4_general_ci->utf8mb4_bin\"]\n",
    )
    .unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    let r = check_human(
        "rep_chk",
        &[
            "--config",
            cfg_arg,
            "--accept",
            "schema.no_key:rep_chk.nokey",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "the only error is accepted:\n{}", r.stderr);
    let v = r.json();
    assert_eq!(ours(&v["findings"], "schema.collation_change"), 0);
    assert_eq!(ours(&v["findings"], "schema.no_key"), 0);
    assert_eq!(ours(&v["findings"], "schema.foreign_key"), 1);
    assert_eq!(ours(&v["accepted"], "schema.collation_change"), 400);
    assert_eq!(v["summary"]["accepted"], 401);
    assert_eq!(v["summary"]["errors"], 0);
    let accepted: Vec<(String, String)> = pairs(&v["accepted_groups"], "rule", "accepted_by");
    assert!(
        accepted.contains(&(
            "schema.collation_change".into(),
            "schema.collation_change:utf8mb4_general_ci->utf8mb4_bin".into()
        )),
        "{accepted:?}"
    );
    let r = check_human("rep_chk", &["--config", cfg_arg]);
    assert!(
        r.stdout.contains("ACCEPTED (400"),
        "accepted findings are listed, not hidden:\n{}",
        r.stdout
    );

    // An [accept] entry is checked like every key of the file.
    std::fs::write(&cfg, "[accept]\nverify = [\"x\"]\n").unwrap();
    check_human("rep_chk", &["--config", cfg_arg]).assert_clean_error("unknown field");
    check_human("rep_chk", &["--accept", "not a rule"]).assert_clean_error("--accept");
}

#[tokio::test]
async fn diff_over_400_tables_names_the_differing_column_first_and_its_fix_applies_in_batches() {
    fresh_db("rep_diff").await;
    let make = |ts: u32| {
        many_tables("rep_diff", 400, |t| {
            format!(
                "CREATE TABLE {t} (id INT PRIMARY KEY, ts INT, v VARCHAR(10));
                 INSERT INTO {t} VALUES (1, {ts}, 'a*/x'), (2, 7, 'b');"
            )
        })
    };
    exec(Side::Source, &make(1)).await;
    exec(Side::Target, &make(2)).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fix = dir.path().join("fix.sql");
    let r = run(cutover()
        .args(["diff", "--source", &dsn(Side::Source)])
        .args(["--target", &dsn(Side::Target), "--tables", "rep_diff.*"])
        .args(["--fix-batch", "150", "--fix-sql"])
        .arg(&fix)
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let cause = lines
        .iter()
        .position(|l| l.contains("column `ts` differs in 400 tables (400 rows)"))
        .unwrap_or_else(|| panic!("no grouped cause:\n{}", head(&r.stdout, 20)));
    let first_table = lines
        .iter()
        .position(|l| l.contains("rep_diff.t001"))
        .unwrap();
    assert!(
        cause < 10 && cause < first_table,
        "the grouped cause comes first:\n{}",
        head(&r.stdout, 12)
    );
    assert_eq!(
        r.stdout.matches("differs in").count(),
        1,
        "one cause: {}",
        head(&r.stdout, 12)
    );

    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let g = &v["groups"][0];
    assert_eq!(
        (&g["kind"], &g["column"], &g["tables"], &g["count"]),
        (
            &Value::from("rows.changed"),
            &Value::from("ts"),
            &Value::from(400),
            &Value::from(400)
        ),
        "{:#}",
        v["groups"]
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for doc in [&html, &md] {
        let at = doc
            .find("Differences by cause")
            .expect("the causes section");
        assert!(at < doc.find("rep_diff.t002").unwrap());
    }

    // The fix SQL: a comment with the key per statement, a commit every 150 statements, and
    // one file per table; it applies and leaves nothing to fix.
    let sql = std::fs::read_to_string(&fix).unwrap();
    assert!(
        sql.contains("-- rep_diff.t007: changed ts, id=1\nUPDATE `rep_diff`.`t007` SET `ts` = 1"),
        "{}",
        head(&sql, 30)
    );
    assert_eq!(
        sql.matches("\nCOMMIT;\nSTART TRANSACTION;\n").count(),
        2,
        "400 statements, batches of 150"
    );
    let files: Vec<PathBuf> = std::fs::read_dir(out.join("fix"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 400);
    let one = std::fs::read_to_string(out.join("fix").join("rep_diff.t123.sql")).unwrap();
    assert!(
        one.starts_with("-- cutover fix SQL for rep_diff.t123"),
        "{one}"
    );
    assert_eq!(one.matches("UPDATE ").count(), 1, "{one}");
    assert!(one.trim_end().ends_with("foreign_key_checks = 1;"), "{one}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&fix, &out.join("fix").join("rep_diff.t123.sql")] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} holds row values: {mode:o}",
                f.display()
            );
        }
    }
    sandbox()
        .target
        .sql(&sql)
        .unwrap_or_else(|e| panic!("the fix SQL applies: {e}"));
    let r = diff_json("rep_diff.*", &[]);
    assert_eq!(r.code, 0, "nothing left to fix: {}", head(&r.stderr, 10));
}

#[tokio::test]
async fn diff_reports_an_accepted_collation_change_apart_and_keeps_row_differences() {
    fresh_db("rep_acc").await;
    let make = |coll: &str, extra: &str| {
        format!(
            "USE rep_acc;
             CREATE TABLE a (id INT PRIMARY KEY, name VARCHAR(20) COLLATE {coll}, note TEXT COLLATE {coll}{extra});
             INSERT INTO a (id, name, note) VALUES (1, 'x', 'y');
             CREATE TABLE b (id INT PRIMARY KEY, name VARCHAR(20) COLLATE {coll});
             INSERT INTO b VALUES (1, 'x')"
        )
    };
    exec(Side::Source, &make("utf8mb4_general_ci", ", gone INT")).await;
    exec(Side::Target, &make("utf8mb4_bin", "")).await;

    let r = diff_json("rep_acc.*", &[]);
    assert_eq!(r.code, 1, "a column missing in the target: {}", r.stderr);
    let v = r.json();
    assert_eq!(v["summary"]["accepted"], 0);
    let kinds: Vec<(String, String)> = pairs(&v["groups"], "kind", "cause");
    assert_eq!(
        kinds,
        [
            (
                "schema.missing_in_target".into(),
                "gone int(11) -> -".into()
            ),
            (
                "schema.collation".into(),
                "utf8mb4_general_ci -> utf8mb4_bin".into()
            ),
        ],
        "{:#}",
        v["groups"]
    );

    let r = diff_json(
        "rep_acc.*",
        &[
            "--accept",
            "schema.collation:utf8mb4_general_ci->utf8mb4_bin",
            "--accept",
            "schema.missing_in_target:rep_acc.a.gone",
        ],
    );
    assert_eq!(r.code, 0, "both accepted: {}", r.stderr);
    let v = r.json();
    assert_eq!(v["summary"]["accepted"], 4);
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["schema"], serde_json::json!([]), "{t:#}");
        assert_eq!(t["status"], "equal");
    }
    assert_eq!(
        v["tables"][0]["accepted"][0]["accepted_by"],
        "schema.collation:utf8mb4_general_ci->utf8mb4_bin"
    );
    assert!(
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["accepted_by"].is_string()),
        "{:#}",
        v["groups"]
    );
    assert!(
        r.stderr.contains("4 schema differences accepted"),
        "{}",
        r.stderr
    );
    // Row differences are the verdict: they cannot be accepted.
    diff_json("rep_acc.*", &["--accept", "rows.changed:rep_acc.*"])
        .assert_clean_error("schema differences only");
}

/// A general log of one session, captured into a workload file.
fn workload(dir: &Path, statements: &[String]) -> PathBuf {
    let mut log = String::from(
        "2024-01-31T10:00:00.000100Z\t    5 Connect\troot@localhost on  using TCP/IP\n",
    );
    for (i, s) in statements.iter().enumerate() {
        log.push_str(&format!(
            "2024-01-31T10:00:00.{:06}Z\t    5 Query\t{s}\n",
            200 + i
        ));
    }
    log.push_str("2024-01-31T10:00:00.900000Z\t    5 Quit\t\n");
    let path = dir.join("general.log");
    std::fs::write(&path, log).unwrap();
    let w = dir.join("w.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&path)
        .arg("--out")
        .arg(&w));
    assert_eq!(r.code, 0, "{}", r.stderr);
    w
}

/// A table `db.t` whose row 2 differs between the sides.
async fn differing_table(db: &str) {
    fresh_db(db).await;
    both(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')")).await;
    exec(
        Side::Target,
        &format!("UPDATE {db}.t SET v = 'z' WHERE id = 2"),
    )
    .await;
}

/// A workload whose classes differ in latency on purpose: the target sleeps where the
/// baseline does not (they are told apart by their port), one class runs once, one many
/// times, and one reads the row of `db.t` that differs.
fn replay_workload(dir: &Path, db: &str) -> PathBuf {
    let port = port(Side::Target);
    let mut s = Vec::new();
    for _ in 0..6 {
        s.push(format!(
            "SELECT SLEEP(IF(@@port = {port}, 0.05, 0)) AS slow"
        ));
    }
    s.push(format!("SELECT SLEEP(IF(@@port = {port}, 0.1, 0)) AS once"));
    for i in 0..20 {
        s.push(format!("SELECT {i} AS often"));
    }
    s.push(format!("SELECT v AS differs FROM {db}.t WHERE id = 2"));
    workload(dir, &s)
}

fn replay(w: &Path, extra: &[&str]) -> Run {
    run(cutover()
        .arg("replay")
        .arg(w)
        .args([
            "--target",
            &dsn(Side::Target),
            "--baseline",
            &dsn(Side::Source),
        ])
        .args(["--read-only", "--speed", "max"])
        .args(extra))
}

#[tokio::test]
async fn replay_ranks_classes_by_time_and_count_and_explains_a_slowdown() {
    differing_table("rep_replay").await;
    let dir = tempfile::tempdir().unwrap();
    let w = replay_workload(dir.path(), "rep_replay");
    let r = replay(&w, &["--format", "json"]);
    assert_eq!(r.code, 1, "one class answers differently: {}", r.stderr);
    let v = r.json();
    let rk = &v["ranking"];
    assert_eq!(rk["min_executions"], 5);
    let slow: Vec<&str> = rk["slowdowns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap())
        .collect();
    // The class run once has the highest ratio but too few executions to rank by it. (On a
    // loaded machine a fast class can look slow too; the sleeping one loses most time.)
    assert!(
        !slow.iter().any(|f| f.contains("once")),
        "the class run once is not ranked by its ratio: {rk:#}"
    );
    assert!(slow.first().is_some_and(|f| f.contains("slow")), "{rk:#}");
    let why = rk["slowdowns"][0]["explanation"].as_str().unwrap();
    assert!(
        why.contains("on the target against") && why.contains("6 executions"),
        "{why}"
    );
    assert!(
        rk["by_total_time"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .contains("slow"),
        "{rk:#}"
    );
    assert!(
        rk["by_count"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .contains("often"),
        "{rk:#}"
    );
    assert_eq!(rk["by_count"][0]["count"], 20);
    let lat = &v["latency_ms"];
    assert!(
        lat["baseline"]["p99"].is_number() && lat["target"]["p99"].is_number(),
        "{lat}"
    );

    let r = replay(&w, &[]);
    assert!(r.stdout.contains("latency: baseline p50 "), "{}", r.stdout);
    assert!(r.stdout.contains("; target p50 "), "{}", r.stdout);
    assert!(
        r.stdout.contains("slowdowns (at least 5 executions"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("classes by total time on the target:"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("1 of 1 executions answered differently"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("1 of 1  "),
        "no bare count headings: {}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------
// HTML reports in a browser

/// The headless Chromium the screenshots are taken with (`scripts/lib.sh` installs Debian's
/// `chromium` for the tests).
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,800",
        "--allow-file-access-from-files",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Where on the page each text first appears (its top, in CSS pixels from the top of the
/// page), as laid out by the browser in a 1280×800 window; `None` when it does not appear.
/// The report is copied with a probe script that measures and writes the answer into the
/// page (the report itself has no script, and its content security policy forbids one).
fn positions(browser: &Path, html: &Path, texts: &[&str]) -> Vec<Option<f64>> {
    let page = std::fs::read_to_string(html).unwrap();
    assert!(
        !page.contains("<script"),
        "{}: a report has no script",
        html.display()
    );
    let page = page.replace(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "",
    );
    let probe = format!(
        r#"<script>
const texts = {};
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const found = texts.map(() => null);
let node;
let body = "";
const nodes = [];
while ((node = walker.nextNode())) {{ nodes.push([body.length, node]); body += node.textContent; }}
texts.forEach((t, i) => {{
  const at = body.indexOf(t);
  if (at < 0) return;
  let n = nodes.length - 1;
  while (n > 0 && nodes[n][0] > at) n--;
  const range = document.createRange();
  range.selectNodeContents(nodes[n][1]);
  found[i] = range.getBoundingClientRect().top + window.scrollY;
}});
const out = document.createElement("pre");
out.id = "cutover-probe";
out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script></body>"#,
        serde_json::to_string(texts).unwrap()
    );
    let probed = html.with_extension("probe.html");
    std::fs::write(&probed, page.replace("</body>", &probe)).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = headless(browser, profile.path())
        .args(["--virtual-time-budget=3000", "--dump-dom"])
        .arg(format!("file://{}", probed.display()))
        .output()
        .expect("running chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"cutover-probe\">").unwrap_or_else(|| {
        panic!(
            "no probe answer for {}: {}",
            html.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"cutover-probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    serde_json::from_str(&dom[start..end]).unwrap()
}

/// A screenshot of the first screen; returns its path.
fn screenshot(browser: &Path, html: &Path) -> PathBuf {
    let png = html.with_extension("png");
    let profile = tempfile::tempdir().unwrap();
    let out = headless(browser, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("running chromium");
    let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 1000,
        "no screenshot of {}: {}",
        html.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    png
}

/// One HTML report of each of diff, check, verify, replay and drill, with the verdict each
/// shows: (command, report, verdict).
async fn html_reports(dir: &Path) -> Vec<(&'static str, PathBuf, String)> {
    differing_table("rep_html").await;
    let mut reports = Vec::new();
    let src = dsn(Side::Source);
    let tgt = dsn(Side::Target);

    let out = dir.join("diff");
    let r = run(cutover()
        .args([
            "diff",
            "--source",
            &src,
            "--target",
            &tgt,
            "--tables",
            "rep_html.*",
            "--out",
        ])
        .arg(&out));
    assert_eq!(r.code, 1, "{}", r.stderr);
    reports.push(("diff", out.join("report.html"), "DIFFERENT".to_string()));

    let out = dir.join("check");
    let r = run(cutover()
        .args([
            "check",
            "--source",
            &src,
            "--databases",
            "rep_html",
            "--out",
        ])
        .arg(&out));
    assert!(r.code <= 1, "{}", r.stderr);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("check.json")).unwrap()).unwrap();
    let verdict = if v["summary"]["errors"].as_u64() > Some(0) {
        "ERROR"
    } else if v["summary"]["warnings"].as_u64() > Some(0) {
        "READY WITH WARNINGS"
    } else {
        "READY"
    };
    reports.push(("check", out.join("check.html"), verdict.to_string()));

    let out = dir.join("verify");
    let r = run(cutover()
        .args([
            "verify",
            "--source",
            &src,
            "--target",
            &tgt,
            "--tables",
            "rep_html.*",
        ])
        .args(["--for", "1s", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    reports.push(("verify", out.join("verify.html"), "NO MISMATCH".to_string()));

    let w = replay_workload(dir, "rep_html");
    let out = dir.join("replay");
    let r = replay(&w, &["--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    reports.push(("replay", out.join("replay.html"), "DIFFERENT".to_string()));

    let rb = dir.join("runbook.toml");
    std::fs::write(
        &rb,
        "[runbook]\nname = \"rehearsal\"\nannounce = [\"stdout\"]\n\n[[step]]\nid = \"noop\"\ntitle = \"Nothing\"\ndri = \"alice\"\nreviewer = \"bob\"\nexpect = \"5s\"\nrun = \"true\"\n",
    )
    .unwrap();
    let journal = dir.join("journal");
    let r = run(cutover()
        .args(["drill", "run"])
        .arg(&rb)
        .arg("--journal")
        .arg(&journal));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let out = dir.join("drill");
    let r = run(cutover()
        .args(["drill", "report", "--format", "json", "--out"])
        .arg(&out)
        .arg(&journal));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = r.json()["runs"][0]["status"]
        .as_str()
        .unwrap_or_default()
        .replace('_', " ")
        .to_uppercase();
    reports.push(("drill", out.join("drill.html"), status));
    reports
}

#[tokio::test]
async fn html_reports_show_their_verdict_on_the_first_screen_in_a_browser() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH; scripts/test installs Debian's `chromium` (scripts/lib.sh)"
        );
        return;
    };
    // CUTOVER_KEEP_SCREENSHOTS=DIR keeps the reports and their screenshots to look at.
    let kept = std::env::var_os("CUTOVER_KEEP_SCREENSHOTS").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = kept.as_deref().unwrap_or(tmp.path());
    for (command, html, verdict) in html_reports(dir).await {
        let png = screenshot(&browser, &html);
        let at = positions(&browser, &html, &[&verdict]);
        eprintln!(
            "{command}: verdict {verdict} at {:?} px in {}",
            at[0],
            png.display()
        );
        match at[0] {
            Some(top) => assert!(
                top < 800.0,
                "{command}: the verdict {verdict} is {top} px down, below the first screen"
            ),
            None => panic!("{command}: no verdict {verdict} in {}", html.display()),
        }
    }
}

/// The first screen also says when the report was made and by what command line: the
/// provenance block every report opens with (issue 19, the output layer).
#[tokio::test]
async fn html_reports_show_when_and_how_they_were_made_on_the_first_screen() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH; scripts/test installs Debian's `chromium` (scripts/lib.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The date of the run (a report made just before midnight may carry the day before).
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = |s: i64| {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{s}"), "+%Y-%m-%d"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (today, yesterday) = (day(secs), day(secs - 86_400));
    for (command, html, verdict) in html_reports(dir.path()).await {
        let needles = [
            verdict.as_str(),
            today.as_str(),
            yesterday.as_str(),
            "Command",
            command,
        ];
        let at = positions(&browser, &html, &needles);
        let first = |i: usize| at[i].is_some_and(|top| top < 800.0);
        assert!(first(0), "{command}: verdict {verdict}: {at:?}");
        assert!(
            first(1) || first(2),
            "{command}: no time on the first screen: {at:?}"
        );
        assert!(
            first(3) && first(4),
            "{command}: no command line on the first screen: {at:?}"
        );
    }
}
