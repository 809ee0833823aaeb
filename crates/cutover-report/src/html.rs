//! One self-contained HTML page: inline CSS, no script, no external asset (a content security
//! policy forbids them anyway), readable on screen and on paper. Every piece of text is
//! HTML-escaped; the only markup comes from this file.

use crate::text::{unix_lines, visible};
use crate::{Align, Badge, Block, Cell, Chart, Document, Table, Tone};

const CSS: &str = r#":root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#fff;margin:0 auto;padding:24px;max-width:1200px}
header{display:flex;align-items:center;flex-wrap:wrap;gap:12px;border-bottom:2px solid #d0d7de;padding-bottom:12px;margin-bottom:16px}
h1{font-size:22px;margin:0}
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-size:12px;font-weight:700;letter-spacing:.04em;color:#fff;vertical-align:middle;border:2px solid transparent}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0 0 8px}
dt{font-weight:600;color:#57606a}
dd{margin:0}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.93em;max-width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
code{white-space:pre-wrap;overflow-wrap:anywhere}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;white-space:pre-wrap;overflow-wrap:anywhere}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.badge.ok,.badge.bad,.badge.warn,.badge.neutral{color:#fff;font-weight:700}
.badge.ok{background:#1a7f37}.badge.bad{background:#cf222e}.badge.warn{background:#9a6700}.badge.neutral{background:#6e7781}
table.compare td.left{background:#eef5ff}
table.compare td.right{background:#fff8e6}
table.bars td.chart{min-width:360px;white-space:nowrap}
.bar{display:inline-block;height:10px;vertical-align:middle;border-radius:2px}
.bar.left{background:#54aeff}.bar.right{background:#d4a72c}
@media print{
body{padding:0;max-width:none;font-size:11px}
.badge{background:#fff!important;border-color:currentColor}
.badge.ok{color:#1a7f37}.badge.bad{color:#cf222e}.badge.warn{color:#9a6700}.badge.neutral{color:#57606a}
th,table.compare td{-webkit-print-color-adjust:exact;print-color-adjust:exact}
h2,h3{break-after:avoid}
tr,pre{break-inside:avoid}
thead{display:table-header-group}
}
"#;

pub(crate) fn render(d: &Document) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    out.push_str("<title>");
    out.push_str(&escape(&d.title));
    if let Some(b) = &d.badge {
        out.push_str(" — ");
        out.push_str(&escape(&b.label));
    }
    out.push_str("</title>\n<style>\n");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<header>\n<h1>");
    out.push_str(&escape(&d.title));
    out.push_str("</h1>\n");
    if let Some(b) = &d.badge {
        out.push_str(&badge(b));
        out.push('\n');
    }
    out.push_str("</header>\n");
    if !d.summary.is_empty() {
        out.push_str("<dl class=\"summary\">\n");
        for (k, v) in &d.summary {
            out.push_str("<dt>");
            out.push_str(&escape(k));
            out.push_str("</dt>");
            out.push_str(&open("dd", classes(v.tone, Align::Left, "")));
            out.push_str(&inline(v));
            out.push_str("</dd>\n");
        }
        out.push_str("</dl>\n");
    }
    for s in &d.sections {
        out.push_str("<section>\n<h2>");
        out.push_str(&escape(&s.heading));
        if let Some(b) = &s.badge {
            out.push(' ');
            out.push_str(&badge(b));
        }
        out.push_str("</h2>\n");
        for b in &s.blocks {
            block(&mut out, b);
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn block(out: &mut String, b: &Block) {
    match b {
        Block::Heading(h) => {
            out.push_str("<h3>");
            out.push_str(&escape(h));
            out.push_str("</h3>\n");
        }
        Block::Paragraph(p) => {
            out.push_str("<p>");
            out.push_str(&escape_lines(p));
            out.push_str("</p>\n");
        }
        Block::Code(c) => {
            out.push_str("<pre>");
            out.push_str(&escape(&unix_lines(c)));
            out.push_str("</pre>\n");
        }
        Block::Table(t) => table(out, t, None),
        Block::Compare(c) => table(out, &c.as_table(), Some(c.labels.len())),
        Block::Chart(c) => chart(out, c),
        Block::Bars(b) => bars(out, b),
    }
}

/// Colours of the series (colour-blind safe, distinguishable in print).
const SERIES: [&str; 8] = [
    "#0969da", "#bf8700", "#1a7f37", "#8250df", "#cf222e", "#57606a", "#1b7c83", "#bc4c00",
];

/// Grouped horizontal bars as an inline SVG, with a legend, then the numbers as a table for
/// readers (and printers) that want them.
fn chart(out: &mut String, c: &Chart) {
    use std::fmt::Write as _;
    let n = c.series.len().max(1);
    let max = c
        .groups
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (label_w, bar_w, bar_h, gap) = (180.0, 560.0, 12.0, 10.0);
    let group_h = bar_h * n as f64 + gap;
    let legend_h = 22.0;
    let height = legend_h + group_h * c.groups.len() as f64 + 20.0;
    let width = label_w + bar_w + 80.0;
    let _ = writeln!(
        out,
        "<svg class=\"chart\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&c.unit));
    for (i, s) in c.series.iter().enumerate() {
        let x = label_w + i as f64 * 120.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"13\">{}</text>",
            SERIES[i % SERIES.len()],
            x + 14.0,
            escape(s)
        );
    }
    for (g, (label, values)) in c.groups.iter().enumerate() {
        let y0 = legend_h + g as f64 * group_h;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y0 + bar_h * n as f64 / 2.0 + 4.0,
            escape(label)
        );
        for (i, v) in values.iter().enumerate().take(n) {
            let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) else {
                continue;
            };
            let w = if max > 0.0 {
                (v / max * bar_w).max(1.0)
            } else {
                1.0
            };
            let y = y0 + i as f64 * bar_h;
            let _ = writeln!(
                out,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {v:.1} {}</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{v:.1}</text>",
                bar_h - 2.0,
                SERIES[i % SERIES.len()],
                escape(c.series.get(i).map(String::as_str).unwrap_or("")),
                escape(&c.unit),
                label_w + w + 4.0,
                y + bar_h - 3.0
            );
        }
    }
    out.push_str("</svg>\n");
    table(out, &c.as_table(), None);
}

/// Bars as widths of styled spans, to one scale: no script, no image.
fn bars(out: &mut String, b: &crate::Bars) {
    let max = b
        .rows
        .iter()
        .flat_map(|(_, l, r)| [*l, *r])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let width = |v: f64| {
        if max > 0.0 && v.is_finite() && v > 0.0 {
            (v / max * 60.0).clamp(0.5, 60.0)
        } else {
            0.0
        }
    };
    out.push_str("<table class=\"bars\">\n<thead><tr><th></th><th>");
    out.push_str(&escape(&b.unit));
    out.push_str("</th></tr></thead>\n<tbody>\n");
    for (label, l, r) in &b.rows {
        out.push_str("<tr><td><code>");
        out.push_str(&escape(label));
        out.push_str("</code></td><td class=\"chart\">");
        for (name, v, class) in [(&b.left, *l, "left"), (&b.right, *r, "right")] {
            out.push_str(&format!(
                "<div><span class=\"bar {class}\" style=\"width:{:.1}%\"></span> {} {}</div>",
                width(v),
                escape(name),
                escape(&format!("{v:.3}"))
            ));
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// `compare`: the number of label columns; the two after them are the sides.
fn table(out: &mut String, t: &Table, compare: Option<usize>) {
    if t.header.is_empty() {
        return;
    }
    let side = |i: usize| match compare {
        Some(n) if i == n => "left",
        Some(n) if i == n + 1 => "right",
        _ => "",
    };
    out.push_str(if compare.is_some() {
        "<table class=\"compare\">\n<thead><tr>"
    } else {
        "<table>\n<thead><tr>"
    });
    for (i, h) in t.header.iter().enumerate() {
        out.push_str(&open("th", classes(Tone::Neutral, t.align_of(i), side(i))));
        out.push_str(&escape_lines(h));
        out.push_str("</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let empty = Cell::default();
    for row in &t.rows {
        out.push_str("<tr>");
        for i in 0..t.header.len() {
            let c = row.get(i).unwrap_or(&empty);
            out.push_str(&open("td", classes(c.tone, t.align_of(i), side(i))));
            out.push_str(&inline(c));
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn badge(b: &Badge) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        b.tone.class(),
        escape(&b.label)
    )
}

fn classes(tone: Tone, align: Align, side: &str) -> String {
    let mut c: Vec<&str> = Vec::new();
    if tone != Tone::Neutral {
        c.push(tone.class());
    }
    if align == Align::Right {
        c.push("num");
    }
    if !side.is_empty() {
        c.push(side);
    }
    c.join(" ")
}

fn open(tag: &str, classes: String) -> String {
    if classes.is_empty() {
        format!("<{tag}>")
    } else {
        format!("<{tag} class=\"{classes}\">")
    }
}

fn inline(c: &Cell) -> String {
    if c.code {
        if c.text.is_empty() {
            String::new()
        } else {
            format!("<code>{}</code>", escape(&unix_lines(&c.text)))
        }
    } else {
        escape_lines(&c.text)
    }
}

/// Escaped text whose line breaks show as `<br>`.
fn escape_lines(s: &str) -> String {
    escape(&unix_lines(s)).replace('\n', "<br>")
}

/// Text safe in element content and in quoted attribute values.
fn escape(s: &str) -> String {
    let s = visible(s);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("a|b `c`"), "a|b `c`");
        assert_eq!(escape("\u{0}\u{1b}"), "\\u{0}\\u{1b}");
        assert_eq!(escape("caf\u{fffd} 日本"), "caf\u{fffd} 日本");
        assert_eq!(escape_lines("a\r\nb\nc"), "a<br>b<br>c");
    }

    #[test]
    fn whole_document() {
        let html = render(&crate::sample::document());
        assert!(html.starts_with("<!DOCTYPE html>\n"));
        assert!(html.ends_with("</html>\n"));
        // The only tags are the renderer's own.
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<i>"), "{html}");
        assert!(!html.contains(" src=") && !html.contains(" href="));
        assert!(html
            .contains("<title>Report &lt;script&gt;alert(1)&lt;/script&gt; — DIFFERENT</title>"));
        assert!(html.contains("<span class=\"badge bad\">DIFFERENT</span>"));
        assert!(
            html.contains("<h2>shop.orders &lt;b&gt; <span class=\"badge warn\">ERROR</span></h2>")
        );
        assert!(html.contains("<dt>Note | pipe</dt><dd>line1<br>line2 *not bold*</dd>"));
        assert!(
            html.contains("<td><code>a|b `tick` ``two``</code></td><td class=\"bad num\">3</td>")
        );
        assert!(html.contains(
            "<tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td class=\"num\"></td></tr>"
        ));
        assert!(html.contains("<pre>```\nerror `x` &lt;i&gt;\n</pre>"));
        assert!(html.contains("<table class=\"compare\">"));
        assert!(html.contains(
            "<td><code>id=1</code></td><td class=\"left\"><code>&quot;x\ny&quot;</code></td><td class=\"bad right\"><code>`</code></td>"
        ));
        // Every element opened is closed.
        for tag in [
            "section", "table", "thead", "tbody", "tr", "td", "th", "code", "pre", "dl", "dd",
            "dt", "p", "h2", "h3", "span",
        ] {
            let opened = html.matches(&format!("<{tag}>")).count()
                + html.matches(&format!("<{tag} ")).count();
            let closed = html.matches(&format!("</{tag}>")).count();
            assert_eq!(opened, closed, "{tag}");
        }
    }
}
