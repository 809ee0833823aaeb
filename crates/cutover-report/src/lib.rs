//! The report style every cutover command shares.
//!
//! A command builds a [`Document`] (a title, a verdict badge, a summary of key/value pairs,
//! then sections of paragraphs, tables, code blocks and side-by-side comparisons) and renders
//! it with [`Document::markdown`] (GitHub-flavoured, to paste in a ticket) or
//! [`Document::html`] (one self-contained page: inline CSS, no script, no external asset,
//! readable when printed).
//!
//! Every piece of text is data: the renderers escape it for their format, so a value holding
//! `<script>`, `|`, backticks or newlines shows as itself and never changes the layout.
//! Control characters and bidirectional overrides are shown as `\u{…}` in both formats, so a
//! report cannot drive a terminal or reorder what a reader sees.

mod html;
mod markdown;
pub mod provenance;
mod text;

pub use provenance::Provenance;

/// How a verdict, a badge or a cell should strike the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tone {
    #[default]
    Neutral,
    /// As expected (equal).
    Ok,
    /// Needs a look (could not compare, interrupted).
    Warn,
    /// Wrong (different).
    Bad,
}

impl Tone {
    /// The CSS class of the tone (`neutral`, `ok`, `warn`, `bad`).
    pub fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "neutral",
            Tone::Ok => "ok",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }
}

/// A short label with a tone: the verdict of a document or a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub tone: Tone,
}

impl Badge {
    pub fn new(label: impl Into<String>, tone: Tone) -> Badge {
        Badge {
            label: label.into(),
            tone,
        }
    }
}

/// One piece of inline text: plain, or `code` (values, names, SQL: shown verbatim in a
/// monospace font).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
    pub code: bool,
}

impl Cell {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Neutral,
            code: false,
        }
    }

    /// Verbatim text in a monospace font.
    pub fn code(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Neutral,
            code: true,
        }
    }

    pub fn with_tone(mut self, tone: Tone) -> Cell {
        self.tone = tone;
        self
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::text(s)
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::text(s)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Align {
    #[default]
    Left,
    /// Numbers.
    Right,
}

/// A table: a header and rows of cells. Rows shorter than the header are padded with empty
/// cells; cells beyond the header are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    /// Per column; columns without an entry are left-aligned.
    pub align: Vec<Align>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            align: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Right-aligns the given columns (counts, durations).
    pub fn align_right(mut self, columns: impl IntoIterator<Item = usize>) -> Table {
        for c in columns {
            if self.align.len() <= c {
                self.align.resize(c + 1, Align::Left);
            }
            self.align[c] = Align::Right;
        }
        self
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    pub(crate) fn align_of(&self, column: usize) -> Align {
        self.align.get(column).copied().unwrap_or_default()
    }
}

/// Values side by side: each row has label cells (which key, which column) and a left and a
/// right value (source and target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compare {
    /// The headers of the label cells.
    pub labels: Vec<String>,
    /// The header of the left values (`source`).
    pub left: String,
    /// The header of the right values (`target`).
    pub right: String,
    pub rows: Vec<CompareRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompareRow {
    pub labels: Vec<Cell>,
    pub left: Cell,
    pub right: Cell,
}

impl Compare {
    pub(crate) fn as_table(&self) -> Table {
        let mut header = self.labels.clone();
        header.push(self.left.clone());
        header.push(self.right.clone());
        let n = self.labels.len();
        Table {
            header,
            align: Vec::new(),
            rows: self
                .rows
                .iter()
                .map(|r| {
                    let mut row = r.labels.clone();
                    row.resize(n, Cell::default());
                    row.push(r.left.clone());
                    row.push(r.right.clone());
                    row
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// A sub-heading inside a section.
    Heading(String),
    Paragraph(String),
    Table(Table),
    /// Preformatted text (an error, SQL), shown verbatim.
    Code(String),
    Compare(Compare),
    /// Grouped horizontal bars (durations per step and drill): an inline SVG in HTML, the
    /// numbers as a table in Markdown.
    Chart(Chart),
    /// A bar chart comparing two measures per label (latency on baseline and target).
    Bars(Bars),
}

/// Pairs of bars, one pair per label, drawn to one scale (HTML), or a table (Markdown).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bars {
    /// What the numbers are, e.g. `p99 latency (ms)`.
    pub unit: String,
    /// The names of the two measures (`baseline`, `target`).
    pub left: String,
    pub right: String,
    /// (label, left value, right value).
    pub rows: Vec<(String, f64, f64)>,
}

impl Eq for Bars {}

impl Bars {
    pub(crate) fn as_table(&self) -> Table {
        let mut t = Table::new([
            "".to_string(),
            format!("{} {}", self.left, self.unit),
            format!("{} {}", self.right, self.unit),
        ])
        .align_right([1, 2]);
        for (label, a, b) in &self.rows {
            t.push(vec![
                Cell::code(label.clone()),
                Cell::text(format!("{a:.3}")),
                Cell::text(format!("{b:.3}")),
            ]);
        }
        t
    }
}

/// Values per group and series: e.g. one group per step, one series per drill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    /// What a value is, shown on the axis (`seconds`).
    pub unit: String,
    /// The series' names, in the order of each group's values.
    pub series: Vec<String>,
    /// A label and one value per series (`None`: no value, no bar).
    pub groups: Vec<(String, Vec<Option<f64>>)>,
}

impl Chart {
    /// The chart as a table: one row per group, one column per series.
    pub(crate) fn as_table(&self) -> Table {
        let mut header = vec![String::new()];
        header.extend(self.series.iter().map(|s| format!("{s} ({})", self.unit)));
        let mut t = Table::new(header).align_right(1..=self.series.len());
        for (label, values) in &self.groups {
            let mut row = vec![Cell::text(label.clone())];
            row.extend(values.iter().map(|v| match v {
                Some(v) => Cell::text(format!("{v:.1}")),
                None => Cell::text("—"),
            }));
            t.push(row);
        }
        t
    }
}

impl Eq for Chart {}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub badge: Option<Badge>,
    pub blocks: Vec<Block>,
}

impl Section {
    pub fn new(heading: impl Into<String>) -> Section {
        Section {
            heading: heading.into(),
            badge: None,
            blocks: Vec::new(),
        }
    }

    pub fn with_badge(mut self, badge: Badge) -> Section {
        self.badge = Some(badge);
        self
    }

    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }
}

/// A report: title, verdict, summary, sections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    /// The verdict of the whole report.
    pub badge: Option<Badge>,
    /// Key/value pairs shown first (source, target, totals).
    pub summary: Vec<(String, Cell)>,
    pub sections: Vec<Section>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Document {
        Document {
            title: title.into(),
            ..Document::default()
        }
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        markdown::render(self)
    }

    /// A self-contained HTML page.
    pub fn html(&self) -> String {
        html::render(self)
    }
}

#[cfg(test)]
pub(crate) mod sample {
    use super::*;

    /// A document that exercises every block, with hostile text everywhere.
    pub fn document() -> Document {
        let mut d = Document::new("Report <script>alert(1)</script>");
        d.badge = Some(Badge::new("DIFFERENT", Tone::Bad));
        d.summary
            .push(("Source".into(), Cell::code("mysql://u:***@h/db")));
        d.summary
            .push(("Note | pipe".into(), Cell::text("line1\nline2 *not bold*")));
        let mut s = Section::new("shop.orders <b>").with_badge(Badge::new("ERROR", Tone::Warn));
        s.push(Block::Heading("Samples".into()));
        s.push(Block::Paragraph("# not a heading\n- not a list".into()));
        let mut t = Table::new(["name", "n"]).align_right([1]);
        t.push(vec![
            Cell::code("a|b `tick` ``two``"),
            Cell::text("3").with_tone(Tone::Bad),
        ]);
        t.push(vec![Cell::text("<script>alert(1)</script>")]);
        s.push(Block::Table(t));
        s.push(Block::Code("```\nerror `x` <i>\n".into()));
        s.push(Block::Compare(Compare {
            labels: vec!["key".into()],
            left: "source".into(),
            right: "target".into(),
            rows: vec![CompareRow {
                labels: vec![Cell::code("id=1")],
                left: Cell::code("\"x\ny\""),
                right: Cell::code("`").with_tone(Tone::Bad),
            }],
        }));
        s.push(Block::Chart(Chart {
            unit: "s <u>".into(),
            series: vec!["drill 1".into(), "drill <2>".into()],
            groups: vec![
                ("freeze <b>".into(), vec![Some(12.5), None]),
                ("copy".into(), vec![Some(0.0), Some(300.0)]),
            ],
        }));
        d.sections.push(s);
        d
    }
}
