use super::*;
use proptest::prelude::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_text(text: &str) -> Result<Runbook, RunbookError> {
    parse(Path::new("rb.toml"), text, &no_env)
}

const GOOD: &str = r#"
[runbook]
name = "orders cutover"
announce = ["stdout"]
window = ["freeze", "unfreeze"]

[vars]
DB = "shop"

[[step]]
id = "freeze"
title = "Freeze writes"
dri = "alice"
reviewer = "bob"
expect = "5m"
run = "echo freeze ${DB}"
rollback = "echo unfreeze ${DB}"

[[step]]
id = "gate"
title = "Compare"
dri = "carol"
reviewer = "dave"
expect = "1m"
check = "diff --tables '${DB}.*'"
gate = true
side_effects = false
approvals = { by = ["erin", "frank"], min = 1, timeout = "30m" }

[[step]]
id = "unfreeze"
title = "Unfreeze"
dri = "alice"
reviewer = "bob"
expect = "30s"
timeout = "2m"
manual = true
"#;

#[test]
fn a_good_runbook() {
    let rb = parse_text(GOOD).unwrap();
    assert_eq!(rb.name, "orders cutover");
    assert_eq!(rb.announce, vec![Announce::Stdout]);
    assert_eq!(rb.window, Some(("freeze".into(), "unfreeze".into())));
    assert_eq!(rb.steps.len(), 3);
    let s = &rb.steps[0];
    assert_eq!(s.action, Action::Shell("echo freeze shop".into()));
    assert_eq!(s.rollback.as_deref(), Some("echo unfreeze shop"));
    assert_eq!(s.timeout, Duration::from_secs(900));
    assert!(s.side_effects);
    assert_eq!(s.line, 10);
    let g = &rb.steps[1];
    assert_eq!(
        g.action,
        Action::Check(vec!["diff".into(), "--tables".into(), "shop.*".into()])
    );
    assert!(g.gate && !g.side_effects);
    assert_eq!(
        g.approvals,
        Some(Approvals {
            by: vec!["erin".into(), "frank".into()],
            min: 1,
            timeout: Duration::from_secs(1800)
        })
    );
    assert_eq!(rb.steps[2].action, Action::Manual);
    assert_eq!(rb.steps[2].timeout, Duration::from_secs(120));
    assert_eq!(rb.hash.len(), 64);
}

fn error_of(text: &str) -> RunbookError {
    parse_text(text).expect_err("must be rejected")
}

#[test]
fn problems_are_located() {
    let dup = GOOD.replace("id = \"gate\"", "id = \"freeze\"");
    let e = error_of(&dup);
    assert_eq!((e.line, e.step.as_deref()), (Some(20), Some("freeze")));
    assert!(e.to_string().contains("duplicate step id"), "{e}");
    assert!(
        e.to_string()
            .starts_with("runbook rb.toml:20: step `freeze`:"),
        "{e}"
    );

    let unknown = GOOD.replace("gate = true", "gate = true\ncolour = \"red\"");
    let e = error_of(&unknown);
    assert_eq!(e.line, Some(27), "{e}");
    assert!(e.message.contains("colour"), "{e}");

    let bad = GOOD.replace("expect = \"1m\"", "expect = \"soon\"");
    let e = error_of(&bad);
    assert_eq!((e.line, e.step.as_deref()), (Some(24), Some("gate")), "{e}");
    assert!(e.message.contains("soon"), "{e}");

    let e = error_of(&GOOD.replace("timeout = \"30m\"", "timeout = \"0s\""));
    assert_eq!(e.line, Some(28), "{e}");

    let e = error_of(&GOOD.replace("min = 1", "min = 3"));
    assert!(e.message.contains("2 approvers"), "{e}");

    let e = error_of(&GOOD.replace("\"erin\"", "\"carol\""));
    assert!(e.message.contains("cannot approve their own"), "{e}");

    let e = error_of(&GOOD.replace("echo freeze ${DB}", "echo ${NOPE}"));
    assert!(e.message.contains("NOPE"), "{e}");
    assert_eq!(e.line, Some(16), "{e}");

    let e = error_of(&GOOD.replace("manual = true", "manual = true\nrun = \"x\""));
    assert!(e.message.contains("only one of"), "{e}");
    assert_eq!(e.line, Some(30), "{e}");

    let e = error_of(&GOOD.replace(
        "window = [\"freeze\", \"unfreeze\"]",
        "window = [\"unfreeze\", \"freeze\"]",
    ));
    assert!(e.message.contains("comes after"), "{e}");

    let e = error_of(&GOOD.replace("\"stdout\"", "\"pager\""));
    assert!(e.message.contains("pager"), "{e}");

    let minimal = "[runbook]\nname = \"x\"\n[[step]]\nid = \"a\"\ntitle = \"t\"\ndri = \"a\"\nreviewer = \"b\"\nexpect = \"1m\"\nrun = \"true\"\n";
    assert_eq!(
        parse_text(minimal).unwrap().announce,
        vec![Announce::Stdout],
        "stdout by default"
    );
    let silent = minimal.replace("name = \"x\"", "name = \"x\"\nannounce = []");
    assert!(parse_text(&silent).unwrap().announce.is_empty());

    let e = error_of("[runbook]\nname = \"x\"\n[[step]]\nid = \"a\"\n");
    assert!(e.message.contains("missing field"), "{e}");

    let e = error_of("[runbook\nname = 1");
    assert_eq!(e.line, Some(1), "{e}");

    let e = error_of(&GOOD.replace(
        "check = \"diff --tables '${DB}.*'\"",
        "check = \"drill run x\"",
    ));
    assert!(e.message.contains("cannot run a drill"), "{e}");
}

#[test]
fn variables() {
    let env = |n: &str| (n == "HOOK").then(|| "https://hooks.example/T/B/secret".to_string());
    let text = GOOD.replace(
        "announce = [\"stdout\"]",
        "announce = [\"stdout\", \"webhook:${HOOK}\"]",
    );
    let rb = parse(Path::new("x"), &text, &env).unwrap();
    assert_eq!(
        rb.announce[1],
        Announce::Webhook("https://hooks.example/T/B/secret".into())
    );
    assert_eq!(rb.announce[1].label(), "webhook https://hooks.example");
    assert_eq!(
        expand("a ${X} $Y ${Z:-1} ${", &|n| (n == "X").then(|| "x".into())).unwrap(),
        "a x $Y ${Z:-1} ${"
    );
}

#[test]
fn words() {
    assert_eq!(
        split_words(r#"diff --tables 'a b' "c\"d" e\ f"#).unwrap(),
        vec!["diff", "--tables", "a b", "c\"d", "e f"]
    );
    assert!(split_words("'open").is_err());
    assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
}

/// A step as TOML from generated parts.
fn step_toml(id: &str, expect: &str) -> String {
    format!(
            "[[step]]\nid = \"{id}\"\ntitle = \"t\"\ndri = \"a\"\nreviewer = \"b\"\nexpect = \"{expect}\"\nrun = \"true\"\n\n"
        )
}

proptest! {
    #[test]
    fn any_text_is_an_answer_never_a_panic(s in "\\PC{0,300}") {
        let _ = parse_text(&s);
    }

    #[test]
    fn any_step_table_is_an_answer(fields in proptest::collection::vec(("[a-z_]{1,12}", "[ -~]{0,20}"), 0..8)) {
        let mut t = String::from("[runbook]\nname = \"x\"\n[[step]]\n");
        for (k, v) in fields {
            t.push_str(&format!("{k} = {v:?}\n"));
        }
        let _ = parse_text(&t);
    }

    #[test]
    fn generated_runbooks_parse_and_duplicates_are_found(
        ids in proptest::collection::vec("[a-z][a-z0-9-]{0,10}", 1..8),
        mins in proptest::collection::vec(1u64..600, 8),
    ) {
        let mut t = String::from("[runbook]\nname = \"gen\"\n\n");
        let mut lines = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            lines.push(1 + t.lines().count());
            t.push_str(&step_toml(id, &format!("{}s", mins[i])));
        }
        let first_dup = ids.iter().enumerate().find(|(i, id)| ids[..*i].contains(id)).map(|(i, _)| i);
        match (parse_text(&t), first_dup) {
            (Ok(rb), None) => {
                prop_assert_eq!(rb.steps.len(), ids.len());
                for (i, s) in rb.steps.iter().enumerate() {
                    prop_assert_eq!(&s.id, &ids[i]);
                    prop_assert_eq!(s.expect, Duration::from_secs(mins[i]));
                    prop_assert_eq!(s.timeout, Duration::from_secs(3 * mins[i]));
                    prop_assert_eq!(s.line, lines[i]);
                }
            }
            (Err(e), Some(i)) => {
                prop_assert_eq!(e.step.as_deref(), Some(ids[i].as_str()));
                prop_assert_eq!(e.line, Some(lines[i] + 1));
                prop_assert!(e.message.contains("duplicate"));
            }
            (r, d) => prop_assert!(false, "{:?} with duplicate {:?}", r, d),
        }
    }

    #[test]
    fn quoted_words_split_back(words in proptest::collection::vec("[ -~]{1,12}", 1..6)) {
        let line = words.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(split_words(&line).unwrap(), words);
    }

    #[test]
    fn splitting_is_total(s in "\\PC{0,60}") {
        let _ = split_words(&s);
    }
}
