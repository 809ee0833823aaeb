//! GitHub-flavoured Markdown.
//!
//! Plain text has every character that Markdown (or GitHub: `$` math, `~` strike-through)
//! gives a meaning backslash-escaped, so data never turns into markup, links or HTML; line
//! breaks inside a table cell or a list item become `<br>`, the only HTML this renderer
//! writes. Code spans use a fence longer than any run of backticks they hold; a line break in
//! one shows as `↵`. In table cells `|` is written `\|`, which GitHub reads as a pipe even
//! inside code spans.

use crate::text::{unix_lines, visible};
use crate::{Align, Badge, Block, Cell, Document, Table, Tone};

pub(crate) fn render(d: &Document) -> String {
    let mut out = String::new();
    out.push_str("# ");
    out.push_str(&text(&d.title));
    out.push_str("\n\n");
    if let Some(b) = &d.badge {
        out.push_str(&badge(b));
        out.push_str("\n\n");
    }
    if !d.summary.is_empty() {
        for (k, v) in &d.summary {
            out.push_str("- **");
            out.push_str(&text(k));
            out.push_str(":** ");
            out.push_str(&cell(v, Where::Inline));
            out.push('\n');
        }
        out.push('\n');
    }
    for s in &d.sections {
        out.push_str("## ");
        out.push_str(&text(&s.heading));
        if let Some(b) = &s.badge {
            out.push_str(" — ");
            out.push_str(&text(&b.label));
        }
        out.push_str("\n\n");
        for b in &s.blocks {
            block(&mut out, b);
        }
    }
    // One trailing newline.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn block(out: &mut String, b: &Block) {
    match b {
        Block::Heading(h) => {
            out.push_str("### ");
            out.push_str(&text(h));
            out.push_str("\n\n");
        }
        Block::Paragraph(p) => {
            let p = visible(p);
            let lines: Vec<String> = unix_lines(&p)
                .split('\n')
                .map(|l| line_start(text(l.trim_start())))
                .collect();
            // A backslash at the end of a line is a hard line break.
            out.push_str(&lines.join("\\\n"));
            out.push_str("\n\n");
        }
        Block::Table(t) => table(out, t),
        Block::Compare(c) => table(out, &c.as_table()),
        Block::Chart(c) => table(out, &c.as_table()),
        Block::Bars(b) => table(out, &b.as_table()),
        Block::Code(c) => {
            let c = visible(c);
            let c = unix_lines(&c);
            let fence = "`".repeat(longest_backtick_run(&c).max(2) + 1);
            out.push_str(&fence);
            out.push_str("text\n");
            out.push_str(&c);
            if !c.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&fence);
            out.push_str("\n\n");
        }
    }
}

fn table(out: &mut String, t: &Table) {
    if t.header.is_empty() {
        return;
    }
    let n = t.header.len();
    out.push('|');
    for h in &t.header {
        out.push(' ');
        out.push_str(&text(h));
        out.push_str(" |");
    }
    out.push_str("\n|");
    for i in 0..n {
        out.push_str(match t.align_of(i) {
            Align::Left => " --- |",
            Align::Right => " ---: |",
        });
    }
    out.push('\n');
    let empty = Cell::default();
    for row in &t.rows {
        out.push('|');
        for i in 0..n {
            let c = cell(row.get(i).unwrap_or(&empty), Where::Table);
            if c.is_empty() {
                out.push_str(" |");
            } else {
                out.push(' ');
                out.push_str(&c);
                out.push_str(" |");
            }
        }
        out.push('\n');
    }
    out.push('\n');
}

fn badge(b: &Badge) -> String {
    format!("**{}**", text(&b.label))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    /// A heading, a list item, a line of a paragraph.
    Inline,
    /// A table cell.
    Table,
}

fn cell(c: &Cell, w: Where) -> String {
    let s = if c.code {
        code_span(&c.text, w)
    } else {
        text(&c.text)
    };
    match c.tone {
        Tone::Bad | Tone::Warn if !s.is_empty() => format!("**{s}**"),
        _ => s,
    }
}

/// Plain text with Markdown's meaningful characters escaped (`\|` reads as `|` outside
/// tables too); line breaks as `<br>`.
fn text(s: &str) -> String {
    let s = visible(s);
    let s = unix_lines(&s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '&' | '$' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes what would make the start of a paragraph line a list item, a numbered item or a
/// setext underline.
fn line_start(line: String) -> String {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    match line.chars().next() {
        Some('-' | '+' | '=') => format!("\\{line}"),
        Some(_) if digits > 0 && matches!(line[digits..].chars().next(), Some('.' | ')')) => {
            format!("{}\\{}", &line[..digits], &line[digits..])
        }
        _ => line,
    }
}

/// Verbatim text as a code span.
fn code_span(s: &str, w: Where) -> String {
    if s.is_empty() {
        return String::new();
    }
    let s = visible(s);
    let s = unix_lines(&s).replace('\n', "↵");
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    // One space on each side is stripped when both are there: pad when the content starts or
    // ends with a backtick, or would lose its own spaces.
    let all_spaces = s.chars().all(|c| c == ' ');
    let pad = s.starts_with('`')
        || s.ends_with('`')
        || (s.starts_with(' ') && s.ends_with(' ') && !all_spaces);
    let body = if w == Where::Table {
        s.replace('|', "\\|")
    } else {
        s
    };
    if pad {
        format!("{fence} {body} {fence}")
    } else {
        format!("{fence}{body}{fence}")
    }
}

fn longest_backtick_run(s: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compare, CompareRow, Section};

    #[test]
    fn text_escapes_markup() {
        assert_eq!(
            text("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(text("a|b"), "a\\|b");
        assert_eq!(
            text("*x* _y_ `z` [l](u) ~s~ $m$ &amp; #h !"),
            "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u) \\~s\\~ \\$m\\$ \\&amp; \\#h \\!"
        );
        assert_eq!(text("back\\slash"), "back\\\\slash");
        assert_eq!(text("one\ntwo\r\nthree"), "one<br>two<br>three");
        assert_eq!(text("\u{1b}[2J"), "\\\\u{1b}\\[2J");
    }

    #[test]
    fn code_spans_hold_anything() {
        assert_eq!(code_span("x", Where::Inline), "`x`");
        assert_eq!(code_span("a`b", Where::Inline), "``a`b``");
        assert_eq!(code_span("``x", Where::Inline), "``` ``x ```");
        assert_eq!(code_span("x`", Where::Inline), "`` x` ``");
        assert_eq!(code_span(" x ", Where::Inline), "`  x  `");
        assert_eq!(code_span("  ", Where::Inline), "`  `");
        assert_eq!(code_span("a|b", Where::Table), "`a\\|b`");
        assert_eq!(code_span("a|b", Where::Inline), "`a|b`");
        assert_eq!(code_span("a\nb", Where::Table), "`a↵b`");
        assert_eq!(code_span("<b>", Where::Table), "`<b>`");
        assert_eq!(code_span("", Where::Table), "");
    }

    #[test]
    fn paragraph_lines_do_not_become_blocks() {
        let mut out = String::new();
        block(
            &mut out,
            &Block::Paragraph("- a\n1. b\n12) c\n==\n  # d\nplain".into()),
        );
        assert_eq!(
            out,
            "\\- a\\\n1\\. b\\\n12\\) c\\\n\\==\\\n\\# d\\\nplain\n\n"
        );
    }

    #[test]
    fn code_blocks_outlast_their_content() {
        let mut out = String::new();
        block(&mut out, &Block::Code("```\nx\n````".into()));
        assert_eq!(out, "`````text\n```\nx\n````\n`````\n\n");
    }

    #[test]
    fn tables_keep_their_shape() {
        let mut t = Table::new(["a", "n|m"]).align_right([1]);
        t.push(vec![
            Cell::code("x|y\nz"),
            Cell::text("1").with_tone(Tone::Bad),
        ]);
        t.push(vec![Cell::text("short row")]);
        t.push(vec![
            Cell::text("1"),
            Cell::text("2"),
            Cell::text("dropped"),
        ]);
        let mut out = String::new();
        table(&mut out, &t);
        assert_eq!(
            out,
            "| a | n\\|m |\n| --- | ---: |\n| `x\\|y↵z` | **1** |\n| short row | |\n| 1 | 2 |\n\n"
        );
        for line in out.lines().filter(|l| !l.is_empty()) {
            // Every row has exactly three unescaped pipes.
            let unescaped = line
                .char_indices()
                .filter(|&(i, c)| c == '|' && (i == 0 || &line[i - 1..i] != "\\"))
                .count();
            assert_eq!(unescaped, 3, "{line}");
        }
    }

    #[test]
    fn compare_renders_as_a_table() {
        let d = Document {
            title: "t".into(),
            badge: None,
            summary: Vec::new(),
            sections: vec![Section {
                heading: "s".into(),
                badge: None,
                blocks: vec![Block::Compare(Compare {
                    labels: vec!["key".into(), "column".into()],
                    left: "source".into(),
                    right: "target".into(),
                    rows: vec![CompareRow {
                        labels: vec![Cell::code("id=1")],
                        left: Cell::code("1"),
                        right: Cell::code("2"),
                    }],
                })],
            }],
        };
        assert_eq!(
            render(&d),
            "# t\n\n## s\n\n| key | column | source | target |\n| --- | --- | --- | --- |\n| `id=1` | | `1` | `2` |\n"
        );
    }

    #[test]
    fn whole_document() {
        let md = render(&crate::sample::document());
        assert!(!md.contains("<script>"), "{md}");
        assert!(!md.contains("<b>"), "{md}");
        assert!(md.starts_with("# Report \\<script\\>alert(1)\\</script\\>\n\n**DIFFERENT**\n\n"));
        assert!(md.contains("- **Note \\| pipe:** line1<br>line2 \\*not bold\\*\n"));
        assert!(md.contains("## shop.orders \\<b\\> — ERROR\n"));
        assert!(
            md.contains("| ``` a\\|b `tick` ``two`` ``` | **3** |\n"),
            "{md}"
        );
        assert!(
            md.contains("| `id=1` | `\"x↵y\"` | **`` ` ``** |\n"),
            "{md}"
        );
        assert!(md.ends_with("|\n") && !md.ends_with("\n\n"));
    }
}
