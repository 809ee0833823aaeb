//! The shared heart of cutover.
//!
//! Every command asks one question, *does the target behave like the source?*, over a
//! different unit. This crate holds what they share: where the servers are and how to talk to
//! them ([`endpoint`], [`conn`]), the one config file ([`config`]), what tables look like
//! ([`schema`]), what a cell holds and when two cells are the same ([`value`]), and how to write
//! SQL text safely ([`sql`]), and how long-running commands go easy on production servers
//! ([`throttle`]).

pub mod civil;
pub mod config;
pub mod conn;
pub mod duration;
pub mod endpoint;
pub mod file;
pub mod json;
pub mod schema;
pub mod sql;
pub mod throttle;
pub mod value;

pub use conn::{Conn, Consistency, Db, DbError, Flavor, SessionOptions, SnapshotInfo};
pub use endpoint::{Endpoint, PasswordSource, Role, Secret, SslMode};
pub use schema::{Column, Table, TableName};
pub use value::{same, ColumnKind, CompareOptions, Value};

/// Schemas that hold the server's own bookkeeping or a replication tool's, never user data.
/// They are left out of "all databases" unless named.
pub const SYSTEM_SCHEMAS: &[&str] = &[
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "metrics_schema",
    "dm_meta",
    "lightning_task_info",
    "tidb_cdc",
    "tidb_binlog",
    "lightning_metadata",
];
