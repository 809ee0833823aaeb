//! Where a report comes from: which command made it, when, with what options, with which
//! version of cutover, and what it concluded. A go/no-go record must say when and how it was
//! made, so every human, Markdown and HTML report opens with it.
//!
//! The binary fills one [`Provenance`] per run and hands it to the renderers; a document
//! takes it with [`Provenance::apply`], which puts it first in the document's summary
//! (verdict, when, command, options, version) ahead of what the document itself says about
//! the servers and totals.

use crate::{Badge, Cell, Document, Tone};

/// What made a report. Every text is already safe to show: the command line and options
/// hold no password (the binary removes them before it fills this).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The command, as typed after `cutover` (`diff`, `drill report`).
    pub command: String,
    /// The command line, with passwords replaced by `***`.
    pub argv_redacted: Vec<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC.
    pub finished_at: String,
    /// cutover's version.
    pub version: String,
    /// The verdict word of the JSON envelope (`same`, `differences`, `findings`, …).
    pub verdict: String,
    /// The options given (flag, value), passwords removed; a flag without a value has an
    /// empty value.
    pub options: Vec<(String, String)>,
}

impl Provenance {
    /// The command line as one line, each word quoted when a shell would need it.
    pub fn command_line(&self) -> String {
        self.argv_redacted
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `started_at → finished_at`.
    pub fn when(&self) -> String {
        if self.finished_at.is_empty() || self.finished_at == self.started_at {
            self.started_at.clone()
        } else {
            format!("{} → {}", self.started_at, self.finished_at)
        }
    }

    /// The options as `--flag value --flag2`, or `(none)`.
    pub fn options_line(&self) -> String {
        if self.options.is_empty() {
            return "(none)".to_string();
        }
        self.options
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k} {}", shell_word(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The tone a verdict word strikes.
    pub fn tone(&self) -> Tone {
        match self.verdict.as_str() {
            "same" | "ok" => Tone::Ok,
            "differences" | "findings" | "failed" => Tone::Bad,
            "error" | "interrupted" => Tone::Warn,
            _ => Tone::Neutral,
        }
    }

    /// Puts the provenance first in `doc`'s summary: verdict, when, command, options and
    /// version, then what the document already says (servers, totals). A document without a
    /// badge gets the verdict as its badge.
    pub fn apply(&self, doc: &mut Document) {
        if doc.badge.is_none() && !self.verdict.is_empty() {
            doc.badge = Some(Badge::new(self.verdict.to_uppercase(), self.tone()));
        }
        let mut head: Vec<(String, Cell)> = vec![
            (
                "Verdict".into(),
                Cell::text(self.verdict.clone()).with_tone(self.tone()),
            ),
            ("When".into(), Cell::text(self.when())),
            ("Command".into(), Cell::code(self.command_line())),
            ("Options".into(), Cell::code(self.options_line())),
            ("cutover".into(), Cell::text(self.version.clone())),
        ];
        head.append(&mut doc.summary);
        doc.summary = head;
    }

    /// The same lines for a terminal: the first lines of a human report.
    pub fn text(&self) -> String {
        format!(
            "cutover {} {}: {}\n  when     {}\n  command  {}\n  options  {}\n",
            self.command,
            self.version,
            self.verdict,
            self.when(),
            self.command_line(),
            self.options_line()
        )
    }
}

/// A word as a POSIX shell would need it quoted: bare when it is made of safe characters.
fn shell_word(w: &str) -> String {
    let safe = !w.is_empty()
        && w.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '=' | ',' | '+' | '%')
        });
    if safe {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provenance {
        Provenance {
            command: "diff".into(),
            argv_redacted: vec![
                "cutover".into(),
                "diff".into(),
                "--source".into(),
                "mysql://u:***@h:3306".into(),
                "--tables".into(),
                "shop.*".into(),
            ],
            started_at: "2026-01-02T03:04:05.000Z".into(),
            finished_at: "2026-01-02T03:04:09.500Z".into(),
            version: "0.1.0".into(),
            verdict: "differences".into(),
            options: vec![
                ("--tables".into(), "shop.*".into()),
                ("--yes".into(), String::new()),
            ],
        }
    }

    #[test]
    fn opens_the_document() {
        let mut d = Document::new("report");
        d.summary.push(("Source".into(), Cell::code("s")));
        sample().apply(&mut d);
        let keys: Vec<&str> = d.summary.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["Verdict", "When", "Command", "Options", "cutover", "Source"]
        );
        assert_eq!(d.badge.as_ref().map(|b| b.tone), Some(Tone::Bad));
        let html = d.html();
        assert!(html.contains("2026-01-02T03:04:05.000Z"), "{html}");
        assert!(
            html.contains("&#39;shop.*&#39;") || html.contains("'shop.*'"),
            "{html}"
        );
        let md = d.markdown();
        let verdict = md.find("Verdict").unwrap_or(usize::MAX);
        let source = md.find("Source").unwrap_or(0);
        assert!(verdict < source, "{md}");
    }

    #[test]
    fn quotes_what_a_shell_would_split() {
        assert_eq!(shell_word("shop.*"), "'shop.*'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("--threads"), "--threads");
        assert_eq!(sample().options_line(), "--tables 'shop.*' --yes");
        assert!(sample()
            .text()
            .starts_with("cutover diff 0.1.0: differences\n"));
    }
}
