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
pub mod time;

pub use finding::{Finding, Report, Severity, Summary};
pub use gather::Selection;
pub use profile::{Profile, TargetFlavor};
pub use rules::{Facts, RuleOptions};
pub use run::{check, CheckError, CheckOptions, Event};
pub use snowflake::Layout;
