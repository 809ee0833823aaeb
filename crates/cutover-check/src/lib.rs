//! `cutover check`: migration readiness, read from `information_schema` and the server's
//! variables weeks before the cutover instead of discovered during it.
//!
//! The pipeline: [`gather`] reads a fixed number of queries' worth of [`facts`] from the
//! source (and the target, when given), optionally a second reading of the counters
//! `--sample` later and the [`history`] of earlier runs; [`rules::evaluate`] turns facts into
//! [`Finding`]s — pure functions, so recorded answers of servers that cannot run here
//! (`tests/fixtures/`) are checked by the same code; [`report_doc`] renders the report.
//!
//! The ID-space forecasts ([`forecast`], [`snowflake`]) exist because of the story cutover
//! comes from: snowflake IDs that ran out on production 36 hours before go-live, most likely
//! a uid-generator `WORKER_NODE` table whose AUTO_INCREMENT jumped by 30,000 at every TiDB
//! restart.
//!
//! The workload rules ([`workload`], [`transactions`], [`workload_rules`], [`statement`])
//! read a captured workload file instead of a server: what the application's statements
//! and transactions will meet on the target (no gap locks, no-op syntax, unsupported
//! statements, DDL across transactions, prepared-statement churn, hot rows).
//!
//! Read-only: nothing here writes to a server.

pub mod facts;
pub mod finding;
pub mod forecast;
pub mod gather;
pub mod history;
pub mod profile;
pub mod report_doc;
pub mod rules;
pub mod run;
pub mod snowflake;
pub mod statement;
pub mod time;
pub mod transactions;
pub mod txn_limits;
pub mod workload;
pub mod workload_rules;

pub use finding::{Evidence, Example, Finding, Fix, Report, Severity, Summary, WorkloadSummary};
pub use gather::Selection;
pub use profile::{Profile, TargetFlavor};
pub use rules::{Facts, RuleOptions};
pub use run::{check, CheckError, CheckOptions, Event};
pub use snowflake::Layout;
pub use transactions::WorkloadOptions;
pub use workload::check_workload;
