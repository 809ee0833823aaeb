//! The shape of the source tree, kept true at every commit: no source file over 900 lines, no
//! import circle between the modules of a crate, and an ARCHITECTURE.md whose codemap names
//! every crate and whose invariants each name a test that exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The longest a source file may grow: past it, a file holds more than one job.
const MAX_LINES: usize = 900;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn crates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn no_source_file_is_over_900_lines() {
    let mut long = Vec::new();
    for krate in crates() {
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for f in files {
            let n = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .lines()
                .count();
            if n > MAX_LINES {
                long.push(format!(
                    "{} ({n} lines)",
                    f.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// A crate's modules (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`) and their source text
/// without the test module at the end.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("lib" | "main")) {
            continue;
        }
        if parts.last().map(String::as_str) == Some("mod") {
            parts.pop();
        }
        let mut text = std::fs::read_to_string(&f).unwrap_or_default();
        if let Some(at) = text.find("#[cfg(test)]\nmod tests") {
            text.truncate(at);
        }
        out.insert(parts.join("::"), text);
    }
    out
}

/// The modules of the same crate a module names (`crate::x::…`, `super::x::…`), other than
/// its own parents and children.
fn uses(name: &str, text: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let here: Vec<&str> = name.split("::").collect();
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(start) {
            let begin = from + at;
            from = begin + start.len();
            if begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_') {
                continue;
            }
            let path: String = text[begin..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let (mut base, mut rest): (Vec<&str>, &[&str]) = if segs[0] == "crate" {
                (Vec::new(), &segs[1..])
            } else {
                (here[..here.len() - 1].to_vec(), &segs[1..])
            };
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            for i in (1..=rest.len()).rev() {
                let mut cand = base.clone();
                cand.extend_from_slice(&rest[..i]);
                let cand = cand.join("::");
                if all.contains_key(&cand) {
                    let related = cand == name
                        || cand.starts_with(&format!("{name}::"))
                        || name.starts_with(&format!("{cand}::"));
                    if !related {
                        out.insert(cand);
                    }
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn no_import_circle_between_the_modules_of_a_crate() {
    let mut circles = Vec::new();
    for krate in crates() {
        let mods = modules(&krate.join("src"));
        let graph: HashMap<&str, BTreeSet<String>> = mods
            .iter()
            .map(|(m, text)| (m.as_str(), uses(m, text, &mods)))
            .collect();
        // A circle: a module that reaches itself again.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = graph[start].iter().map(String::as_str).collect();
            while let Some(m) = stack.pop() {
                if m == *start {
                    let name = krate.file_name().unwrap().to_string_lossy().into_owned();
                    circles.push(format!("{name}: {start} reaches itself again"));
                    break;
                }
                if seen.insert(m) {
                    stack.extend(graph[m].iter().map(String::as_str));
                }
            }
        }
    }
    circles.sort();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// Every word (identifier) written in a Rust file under `crates/`: test and function names,
/// and the metric, field and variable names the code spells out.
fn words_in_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let mut words = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if w.contains('_') {
                words.insert(w.to_string());
            }
        }
    }
    words
}

/// Every `fn` name defined under `crates/`.
fn function_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, _) in text.match_indices("fn ") {
            let name: String = text[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The names in backticks that read like a test's: lower-case words joined by `_`, at
/// least four of them, optionally after `module::`.
fn cited_tests(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let last = span.rsplit("::").next()?.trim();
            let ok = last.split('_').count() >= 4
                && last
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            ok.then(|| last.to_string())
        })
        .collect()
}

#[test]
fn architecture_names_every_crate_and_each_invariant_a_test_that_exists() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for krate in crates() {
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            arch.contains(&format!("### `crates/{name}`")),
            "ARCHITECTURE.md has no codemap section for crates/{name}"
        );
    }
    let words = words_in_code();
    let missing: Vec<String> = cited_tests(&arch)
        .into_iter()
        .filter(|t| !words.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names tests that do not exist:\n{}",
        missing.join("\n")
    );
    let invariants = arch
        .split("\n## Invariants")
        .nth(1)
        .expect("an Invariants section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let fns = function_names();
    let without: Vec<&str> = invariants
        .split("\n- **")
        .skip(1)
        .filter(|item| !cited_tests(item).iter().any(|t| fns.contains(t)))
        .map(|item| item.split("**").next().unwrap_or(item))
        .collect();
    assert!(
        without.is_empty(),
        "invariants that name no test:\n{}",
        without.join("\n")
    );
}

#[test]
fn no_library_crate_prints() {
    let mut printing = Vec::new();
    for krate in crates() {
        if krate.file_name().is_some_and(|n| n == "cutover") {
            continue; // the binary: the one place that writes to the terminal
        }
        for (module, text) in modules(&krate.join("src")) {
            for mac in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                let hits = text
                    .match_indices(mac)
                    .filter(|(i, _)| *i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric())
                    .count();
                if hits > 0 {
                    let name = krate.file_name().unwrap().to_string_lossy().into_owned();
                    printing.push(format!("{name}::{module}: {hits} × {mac}"));
                }
            }
        }
    }
    assert!(
        printing.is_empty(),
        "libraries that print:\n{}",
        printing.join("\n")
    );
}
