//! Findings and the report they make.

use serde::Serialize;

/// How bad a finding is. `Error`: the migration or the application will break as things
/// stand. `Warning`: behaviour changes, or a risk that needs a decision. `Info`: a fact
/// worth knowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One finding: which rule, how bad, about what (`db.table`, `db.table.column`, a routine or
/// event as `db.name`, or `None` for the server), what was found and what to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub object: Option<String>,
    pub message: String,
    pub advice: String,
    /// What this finding has in common with others of its rule, when the message alone
    /// does not say it apart from the object (`utf8mb4_general_ci -> utf8mb4_bin`): findings
    /// are grouped by rule and cause ([`Group`]), and `[accept]` patterns match it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What a workload rule saw: the statement class, how often, examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The change that removes the finding, as a machine reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    /// The source transaction a `transactions.*` finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TxnLine>,
}

/// The statements behind a workload finding.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The statement class (`cutover_workload::fingerprint`).
    pub class: String,
    pub statements: u64,
    pub sessions: u64,
    /// Up to 3, the first seen.
    pub examples: Vec<Example>,
}

/// One statement of the workload, where and when it ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Example {
    pub session: u64,
    pub ts_us: i64,
    /// `ts_us` as RFC 3339 (UTC).
    pub time: String,
    pub sql: String,
}

/// What kind of change fixes a finding, and the change itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fix {
    /// `tidb_setting`, `client_setting` or `code_change`.
    pub kind: &'static str,
    pub change: String,
}

impl Finding {
    pub fn new(
        rule: &'static str,
        severity: Severity,
        object: Option<String>,
        message: impl Into<String>,
        advice: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity,
            object,
            message: message.into(),
            advice: advice.into(),
            cause: None,
            evidence: None,
            fix: None,
            transaction: None,
        }
    }
}

impl Finding {
    /// Sets the cause shared with findings of the same rule about other objects.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Finding {
        self.cause = Some(cause.into());
        self
    }

    /// The cause it is grouped by: the one a rule set, else the message with its object
    /// left out (most messages name their object and say the same thing otherwise).
    pub fn group_cause(&self) -> String {
        if let Some(c) = &self.cause {
            return c.clone();
        }
        match self.object.as_deref() {
            Some(o) if !o.is_empty() => self.message.replace(o, "…"),
            _ => self.message.clone(),
        }
    }
}

/// Examples kept per group.
pub const GROUP_EXAMPLES: usize = 3;

/// Findings of one rule with one cause: "schema.collation_change: 401 tables,
/// utf8mb4_general_ci -> utf8mb4_bin".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub rule: &'static str,
    pub severity: Severity,
    pub cause: String,
    /// Findings in the group.
    pub count: usize,
    /// What the objects are (`tables`, `columns`, `routines`, …), for "401 tables".
    pub objects: String,
    /// The first objects (`server` for findings about the server), at most
    /// [`GROUP_EXAMPLES`].
    pub examples: Vec<String>,
    /// The first finding's message, as an example of what the group says.
    pub message: String,
    pub advice: String,
    /// `[accept]` / `--accept`: the entry that accepted these findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
}

impl Group {
    /// "401 tables" / "1 table".
    pub fn counted(&self) -> String {
        let noun = if self.count == 1 {
            self.objects.strip_suffix('s').unwrap_or(&self.objects)
        } else {
            &self.objects
        };
        format!("{} {noun}", self.count)
    }
}

/// What a finding's object is, by its rule and the shape of its name.
fn object_noun(f: &Finding) -> &'static str {
    match f.rule {
        "schema.trigger" => "triggers",
        "schema.routine" => "routines",
        "schema.event" => "events",
        "schema.view" => "views",
        _ => match f.object.as_deref() {
            None => "server findings",
            Some(o) => match o.matches('.').count() {
                0 => "databases",
                1 => "tables",
                2 => "columns",
                _ => "objects",
            },
        },
    }
}

/// Findings grouped by severity, rule and cause, in the order of the findings (errors
/// first). Memory grows with the groups, not with the findings beyond the examples.
pub fn group(findings: &[Finding], accepted_by: &[Option<String>]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<
        (Severity, &'static str, String, Option<String>),
        usize,
    > = std::collections::HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        let by = accepted_by.get(i).cloned().flatten();
        let cause = f.group_cause();
        let key = (f.severity, f.rule, cause.clone(), by.clone());
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                rule: f.rule,
                severity: f.severity,
                cause,
                count: 0,
                objects: object_noun(f).to_string(),
                examples: Vec::new(),
                message: f.message.clone(),
                advice: f.advice.clone(),
                accepted_by: by,
            });
            groups.len() - 1
        });
        let g = &mut groups[at];
        g.count += 1;
        if g.objects != object_noun(f) {
            g.objects = "objects".into();
        }
        if g.examples.len() < GROUP_EXAMPLES {
            g.examples
                .push(f.object.clone().unwrap_or_else(|| "server".into()));
        }
    }
    groups.sort_by_key(|g| g.severity);
    groups
}

/// The forecast of one ID space, for the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastLine {
    pub object: String,
    /// `auto_increment`, `integer_key` or `worker_table`.
    pub kind: &'static str,
    pub capacity: u64,
    pub used: u64,
    pub headroom: u64,
    pub ratio: f64,
    /// IDs per second, when measured.
    pub rate_per_second: Option<f64>,
    /// `sample` or `history`.
    pub rate_from: Option<&'static str>,
    pub growth_per_day: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub eta_growth_seconds: Option<f64>,
    /// On a TiDB target, with the AUTO_ID_CACHE burn of `--tidb-restarts-per-day`.
    pub eta_tidb_seconds: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    /// Findings `[accept]` / `--accept` expected (not in the three counts above).
    pub accepted: usize,
    pub source: String,
    pub source_server: String,
    pub target: Option<String>,
    /// `TiDB 7.5.1`, or `TiDB (assumed: current release)` without `--target`.
    pub target_server: String,
    pub target_flavor: String,
    pub databases: usize,
    pub tables: usize,
    pub id_spaces: usize,
    pub horizon_days: f64,
    pub tidb_restarts_per_day: f64,
    /// Where consumption rates come from: `sample`, `history`, or none.
    pub rates_from: Vec<String>,
    pub elapsed_ms: u64,
    /// ID spaces with a measured rate or a finding.
    pub forecasts: Vec<ForecastLine>,
    /// `--workload`: what was read of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadSummary>,
    /// `--transactions` / `--binlog-from`: what was read of the binlog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TxnSummary>,
}

/// One transaction of the source, as `cutover check --transactions` read it from the binlog.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TxnLine {
    /// Where it starts in the binlog (`FILE:POS`).
    pub position: String,
    /// Its GTID (`domain-server-sequence` on MariaDB), when the binlog has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Bytes of its row events (the rows' images).
    pub bytes: u64,
    pub rows: u64,
    /// The largest row event: an upper bound of its largest row (one key-value entry).
    pub largest_event: u64,
    /// From its first row change to its last, in whole seconds (the binlog's resolution).
    pub duration_s: u64,
    /// Its commit time, seconds since the epoch.
    pub committed_at: u32,
    pub tables: Vec<String>,
}

/// What the binlog scan of `--transactions` read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TxnSummary {
    pub from: String,
    pub to: String,
    pub events: u64,
    pub bytes: u64,
    pub transactions: u64,
    /// The largest transactions by bytes (at most 10).
    pub largest: Vec<TxnLine>,
}

/// What `--workload` read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkloadSummary {
    pub path: String,
    /// The capture source of the file (`general-log`, `proxy`, …).
    pub source: String,
    /// Recorded with `--redact-values`: rules that need a value (hot rows) are not checked.
    pub redacted: bool,
    pub records: u64,
    /// Statements run (queries and executes).
    pub statements: u64,
    pub sessions: u64,
    /// Transactions rebuilt (explicit and `autocommit = 0`; autocommit statements not
    /// counted).
    pub transactions: u64,
    /// From the first record to the last.
    pub span_seconds: f64,
    /// Executes of a statement id the file never prepared (recorded mid-session): their
    /// text is unknown and no rule saw them.
    pub unknown_executes: u64,
}

/// The result of `cutover check`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Every finding not accepted, errors first.
    pub findings: Vec<Finding>,
    /// `findings` grouped by rule and cause, with counts and examples: what a reader reads
    /// first when hundreds of objects share one cause.
    pub groups: Vec<Group>,
    /// Findings `[accept]` or `--accept` expected: reported, not counted in the verdict.
    pub accepted: Vec<AcceptedFinding>,
    pub accepted_groups: Vec<Group>,
    pub summary: Summary,
}

/// A finding an `[accept]` entry expected, and that entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AcceptedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub accepted_by: String,
}

impl Report {
    /// Sorts findings (errors first, then by rule and object), counts and groups them.
    pub fn finish(&mut self) {
        let order = |a: &Finding, b: &Finding| {
            (a.severity, a.rule, &a.object).cmp(&(b.severity, b.rule, &b.object))
        };
        self.findings.sort_by(order);
        self.accepted.sort_by(|a, b| order(&a.finding, &b.finding));
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        self.summary.errors = count(Severity::Error);
        self.summary.warnings = count(Severity::Warning);
        self.summary.infos = count(Severity::Info);
        self.summary.accepted = self.accepted.len();
        self.groups = group(&self.findings, &[]);
        let findings: Vec<Finding> = self.accepted.iter().map(|a| a.finding.clone()).collect();
        let by: Vec<Option<String>> = self
            .accepted
            .iter()
            .map(|a| Some(a.accepted_by.clone()))
            .collect();
        self.accepted_groups = group(&findings, &by);
    }

    /// Moves the findings an entry of `accept` matches (the first that does) to `accepted`,
    /// then [`finish`](Report::finish)es. They stay in the report and no longer count
    /// toward the verdict.
    pub fn accept(&mut self, accept: &[cutover_core::config::Accept]) {
        if accept.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(self.findings.len());
        for f in std::mem::take(&mut self.findings) {
            let cause = f.group_cause();
            match accept
                .iter()
                .find(|a| a.matches(f.rule, f.object.as_deref(), &cause))
            {
                Some(a) => self.accepted.push(AcceptedFinding {
                    finding: f,
                    accepted_by: a.text.clone(),
                }),
                None => kept.push(f),
            }
        }
        self.findings = kept;
        self.finish();
    }

    /// 0 when nothing is an error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity == Severity::Error))
    }
}
