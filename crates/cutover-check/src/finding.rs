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
    /// What a workload rule saw: the statement class, how often, examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The change that removes the finding, as a machine reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    /// The source transaction a `transactions.*` finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<crate::txn_limits::TxnLine>,
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
            evidence: None,
            fix: None,
            transaction: None,
        }
    }
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
    pub transactions: Option<crate::txn_limits::TxnSummary>,
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
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    /// Sorts findings (errors first, then by rule and object) and counts them.
    pub fn finish(&mut self) {
        self.findings
            .sort_by(|a, b| (a.severity, a.rule, &a.object).cmp(&(b.severity, b.rule, &b.object)));
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        self.summary.errors = count(Severity::Error);
        self.summary.warnings = count(Severity::Warning);
        self.summary.infos = count(Severity::Info);
    }

    /// 0 when nothing is an error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity == Severity::Error))
    }
}
