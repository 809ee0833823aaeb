//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "cutover",
    version,
    about = "Move a live MySQL database to TiDB (or any MySQL-compatible target) with no surprises.",
    after_help = "Exit codes: 0 no differences, 1 differences, 2 could not run or compare, 130 interrupted."
)]
pub struct Cli {
    /// The config file (default: ./cutover.toml when it exists). Flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Progress of long commands, on stderr: bars on a terminal; otherwise one line every
    /// DURATION, with the same figures.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s")]
    pub progress_interval: String,
    /// Show no progress (results, warnings and errors still print).
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compare tables between source and target: checksums in the databases, rows where they differ.
    Diff(Box<DiffArgs>),
    /// Start, stop or show a local source/target pair of MariaDB servers.
    Sandbox(SandboxArgs),
    /// Walk through a migration check end to end on a local sandbox.
    Demo(DemoArgs),
    /// Migration readiness: server settings, schema vs the target, ID spaces running out.
    Check(Box<CheckArgs>),
    /// Follow the source's binlog and check every changed row on the target, continuously.
    Verify(Box<VerifyArgs>),
    /// Timed, announced, gated, resumable migration drills, and reports that compare them.
    Drill(DrillArgs),
    /// Read a general or slow query log, or a packet capture, into a workload file (for
    /// `cutover replay`).
    Capture(CaptureArgs),
    /// Replay a workload against a target (and a baseline) and compare every answer.
    Replay(Box<ReplayArgs>),
    /// Inspect or cut a workload file: stats, head, filter.
    Workload(WorkloadArgs),
    /// A MySQL-protocol proxy that relays clients to a server unchanged and records every
    /// command with its response into a workload file.
    Proxy(ProxyArgs),
    /// Probe how source and target behave under concurrency: isolation anomalies and locking.
    Probe(ProbeArgs),
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub action: ProbeAction,
}

#[derive(Subcommand, Debug)]
pub enum ProbeAction {
    /// Run the isolation-anomaly suite (Hermitage: G0, G1a-c, OTV, PMP, P4, G-single, G2-item,
    /// G2) and the locking behaviours applications rely on (gap locks, autocommit FOR UPDATE,
    /// LOCK IN SHARE MODE, NOWAIT) on both sides, and compare. Writes only in a scratch
    /// database it creates and drops. Exit 0 same behaviour, 1 a difference, 2 could not
    /// run, 130 interrupted.
    Isolation(Box<ProbeIsolationArgs>),
}

#[derive(Args, Debug)]
pub struct ProbeIsolationArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Run both sides at this level (READ-UNCOMMITTED, READ-COMMITTED, REPEATABLE-READ,
    /// SERIALIZABLE). Default: each side at its server's default.
    #[arg(long, value_name = "LEVEL")]
    pub isolation: Option<String>,
    /// The scratch database the probe creates on both sides, works in and drops; refused
    /// if it exists and was not made by the probe.
    #[arg(long, value_name = "NAME", default_value = "cutover_probe")]
    pub scratch_db: String,
    /// Run only these tests (ids as in the report: g0, p4, gap-lock, …; comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub tests: Vec<String>,
    /// Write probe.json, probe.md and probe.html to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output: a human table, or JSON on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Where clients connect (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,
    /// The server the proxy relays to (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: String,
    /// The workload file to write (finished on SIGINT/SIGTERM). Further parts, after a
    /// rotation, are named `NAME.part2.EXT`, `NAME.part3.EXT`, … (`--record` is an older
    /// spelling.)
    #[arg(long, alias = "record", value_name = "WORKLOAD")]
    pub output: PathBuf,
    /// Begin a new workload part when the current one reaches this size on disk (MiB).
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub rotate_mib: u64,
    /// Keep at most this many parts; the oldest beyond it are removed (disk used stays below
    /// about MAX_FILES × ROTATE_MIB).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files: u64,
    /// Terminate TLS for clients that ask for it with this certificate chain (PEM), and open
    /// TLS to the upstream in turn. Without it, a TLS client is relayed unchanged and its
    /// session cannot be recorded.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Check the upstream's certificate against this CA (PEM), with the upstream's host name.
    /// Without it the upstream leg is encrypted but the server not authenticated
    /// (like `ssl-mode=required`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub upstream_ssl_ca: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Keep literal values out of the workload: statements with `?` for every literal,
    /// no parameter values, no error messages. Such a workload can be inspected
    /// (`cutover workload stats`), not replayed.
    #[arg(long)]
    pub redact_values: bool,
    /// The summary at the end: human, or JSON.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogKind {
    GeneralLog,
    SlowLog,
    /// A pcap or pcapng file (`tcpdump -w`): MySQL connections to `--port`, reassembled and
    /// decoded at the protocol level.
    Pcap,
}

#[derive(Args, Debug)]
#[command(after_help = "\
From a packet capture (`--from pcap`): Ethernet, Linux cooked (`tcpdump -i any`), loopback \
and raw IP links; IPv4 and IPv6. Each TCP connection to a --port is reassembled (reordered, \
retransmitted and lost segments) and decoded: every command with its answer (columns, rows, \
errors, affected rows, status flags, latency from the packets' times). Capture with e.g. \
`tcpdump -i any -s 0 -w db.pcap 'tcp port 3306'`; TLS connections cannot be decoded. \
A connection that began before the capture is decoded from its next command: its user, \
default database and earlier prepared statements are unknown (counted). Bytes the capture \
lost are reported per connection and direction; the session is marked damaged and decoding \
resumes at its next command.")]
pub struct CaptureArgs {
    /// What INPUT is.
    #[arg(long, value_enum, value_name = "general-log|slow-log|pcap")]
    pub from: LogKind,
    /// The log or capture file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// With `--from pcap`: the servers' TCP ports (repeat or separate with commas).
    #[arg(
        long,
        value_name = "PORT",
        value_delimiter = ',',
        default_value = "3306"
    )]
    pub port: Vec<u16>,
    /// The workload file to write. (`--out` is an older spelling.)
    #[arg(long, alias = "out", value_name = "WORKLOAD")]
    pub output: PathBuf,
    /// Stop at the first entry that cannot be read (default: report it with its line
    /// number and skip it); with `--from pcap`, fail on any bytes the capture lost.
    #[arg(long)]
    pub strict: bool,
    /// Output: a human summary, or JSON.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The workload file (from `cutover capture`).
    #[arg(value_name = "WORKLOAD")]
    pub workload: PathBuf,
    /// The server to replay against (DSN, as for --source).
    #[arg(long, value_name = "DSN")]
    pub target: String,
    /// Run every statement here too and compare the answers (without it: compare with what
    /// the workload recorded).
    #[arg(long, value_name = "DSN")]
    pub baseline: Option<String>,
    /// Read the target password from FILE (else the DSN, else $CUTOVER_TARGET_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,
    /// Read the baseline password from FILE (else the DSN, else $CUTOVER_BASELINE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub baseline_password_file: Option<PathBuf>,
    /// Send only statements shown not to change data, each decided on its own text
    /// (locking reads are sent without their lock and compared; the rest are counted as not
    /// sent); sessions are also `READ ONLY`, again after every reset and change of user.
    /// Reads after a dropped write in the same transaction are marked. Without it the replay
    /// WRITES to the target and the baseline, which must be disposable copies.
    #[arg(long)]
    pub read_only: bool,
    /// With --read-only: take stored functions called from a read as reads (by default a
    /// statement calling one is not sent).
    #[arg(long)]
    pub assume_functions_read_only: bool,
    /// Statements not compared (other than the writes --read-only leaves out) do not make
    /// the exit code 1: the replay's verdict covers only what was compared.
    #[arg(long)]
    pub allow_skipped: bool,
    /// Connections the replay may hold on each server (at least 2: the sessions' lanes and
    /// one for control). Default: half the server's own @@max_connections, at most 200
    /// (the lower of the target's and the baseline's). Sessions beyond it wait for a lane.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// `max` (as fast as possible) or a factor of the captured pace (2 = twice as fast).
    #[arg(long, value_name = "max|FACTOR", default_value = "1")]
    pub speed: String,
    /// `preserve` (one connection per captured session, as many at once as
    /// --max-connections allows) or N (at most N lanes). A session holds a lane from its
    /// first command to its end; sessions beyond the lanes wait for one.
    #[arg(long, value_name = "preserve|N", default_value = "preserve")]
    pub sessions: String,
    /// Server-side time limit per statement (max_statement_time / MAX_EXECUTION_TIME) on the
    /// target and the baseline, e.g. 30s. A statement stopped by it is a difference of its
    /// own (the other side answered).
    #[arg(long, value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// Without --read-only: do not ask before writing to the target and the baseline (for
    /// scripts).
    #[arg(long)]
    pub yes: bool,
    /// Output: a human summary, or the JSON report on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write replay.json, replay.md and replay.html to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    pub action: WorkloadAction,
}

#[derive(Subcommand, Debug)]
pub enum WorkloadAction {
    /// Totals: records, sessions, commands, time span, databases, the most frequent classes.
    Stats {
        #[arg(value_name = "WORKLOAD")]
        file: PathBuf,
        /// Classes listed.
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: usize,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// The first records, one JSON object a line (`--format json`: one document with a
    /// `records` list).
    Head {
        #[arg(value_name = "WORKLOAD")]
        file: PathBuf,
        #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
        lines: usize,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Write the records that match to a new workload file.
    Filter {
        #[arg(value_name = "WORKLOAD")]
        file: PathBuf,
        /// The workload file to write. (`--out` is an older spelling.)
        #[arg(long, alias = "out", value_name = "WORKLOAD")]
        output: PathBuf,
        /// Keep records from this long after the first record (e.g. 30s, 5m).
        #[arg(long, value_name = "DURATION")]
        from: Option<String>,
        /// Keep records until this long after the first record.
        #[arg(long, value_name = "DURATION")]
        until: Option<String>,
        /// Keep these sessions (comma-separated ids).
        #[arg(long, value_delimiter = ',', value_name = "ID")]
        session: Vec<u64>,
        /// Keep statements run in these default databases (comma-separated).
        #[arg(long, value_delimiter = ',', value_name = "DB")]
        database: Vec<String>,
        /// Keep statements of this class, as `stats` prints it (repeatable).
        #[arg(long, value_name = "FINGERPRINT")]
        fingerprint: Vec<String>,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RowHashArg {
    Auto,
    Portable,
    Crc32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Where the servers are and how to log in. Shared by every command that reads databases.
#[derive(Args, Debug, Clone, Default)]
pub struct EndpointArgs {
    /// Source DSN: mysql://user[:password]@host[:port][/db][?ssl-mode=…&ssl-ca=FILE&socket=PATH]
    #[arg(long, value_name = "DSN")]
    pub source: Option<String>,
    /// Target DSN (same form as --source).
    #[arg(long, value_name = "DSN")]
    pub target: Option<String>,
    /// Read the source password from FILE (else the DSN, else $CUTOVER_SOURCE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub source_password_file: Option<PathBuf>,
    /// Read the target password from FILE (else the DSN, else $CUTOVER_TARGET_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,
    /// Server-side time limit per query (max_statement_time / MAX_EXECUTION_TIME), e.g. 30s.
    #[arg(long, value_name = "DURATION")]
    pub query_timeout: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Tables to compare: db.table or db.* (repeatable, or comma-separated). Default: every
    /// database except system and replication-bookkeeping schemas.
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Tables to leave out (reported as skipped): db.table or db.* (repeatable, or
    /// comma-separated; with cutover.toml's `[filter] exclude`). `--skip` is an older spelling.
    #[arg(long, alias = "skip", value_delimiter = ',', value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Concurrent chunks per table (each uses one connection per side).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Target time of one chunk's checksum; chunk sizes adapt toward it.
    #[arg(long, value_name = "DURATION")]
    pub chunk_time: Option<String>,
    /// Differing parts of at most this many rows are compared row by row.
    #[arg(long, value_name = "ROWS")]
    pub row_threshold: Option<u64>,
    /// Compare FLOAT/DOUBLE with this relative tolerance instead of exactly.
    #[arg(long, value_name = "T")]
    pub float_tolerance: Option<f64>,
    /// Row differences listed per table (counts are always complete).
    #[arg(long, value_name = "N")]
    pub max_diffs: Option<usize>,
    /// The per-row hash of the checksums. `auto`: 64 bits (CRC32 and CRC32C of the row on
    /// MariaDB ≥ 10.8, `portable` elsewhere): a differing chunk is missed once in 2^64.
    /// `portable`: 64 bits, CRC32 of the row and of its bytes reversed, which every server
    /// computes and TiDB pushes down to TiKV. `crc32`: 32 bits, about a quarter less CPU on
    /// the servers, missed once in 2^32 (about one in 4 billion differing chunks): for a fast
    /// first pass, not for the final verdict.
    #[arg(long, value_enum, default_value = "auto")]
    pub row_hash: RowHashArg,
    /// Compare only these columns: `column` (every table) or `db.table.column` (repeatable,
    /// comma-separated). Key columns must stay.
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub columns: Vec<String>,
    /// Leave these columns out of the comparison and of the schema section.
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub ignore_columns: Vec<String>,
    /// Compare only the table definitions (columns, types, defaults, indexes, collations).
    #[arg(long)]
    pub schema_only: bool,
    /// Write the SQL that makes the target equal to the source to FILE (DELETE, UPDATE,
    /// INSERT, committed every --fix-batch statements; never REPLACE), each statement under
    /// a comment naming its table and key. With --out, also one file per table in
    /// DIR/fix/.
    #[arg(long, value_name = "FILE")]
    pub fix_sql: Option<std::path::PathBuf>,
    /// Execute the fix SQL on the target, after showing what it changes and asking.
    /// The only way `diff` writes to a database.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: do not ask (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// How each side's reads are made consistent. `snapshot`: every connection reads one
    /// consistent snapshot opened at the start (START TRANSACTION WITH CONSISTENT SNAPSHOT,
    /// READ ONLY); on a production server a long snapshot keeps undo history alive (purge
    /// lag, growing undo space) until the diff ends. `locked`: the snapshots of a side are
    /// opened at one instant under a brief FLUSH TABLES WITH READ LOCK (needs RELOAD); while
    /// it is held, writes stop, and it waits behind (and then blocks) running DDL and long
    /// queries. `none`: each query reads the latest data.
    #[arg(long, value_name = "MODE", default_value = "snapshot")]
    pub consistency: String,
    /// Read a TiDB target as of this TSO (tidb_snapshot).
    #[arg(long, value_name = "TSO")]
    pub target_snapshot: Option<String>,
    /// Live migrations: compare the differing rows again after DURATION (fresh reads) and
    /// report only those that persist; those that converged are listed apart.
    #[arg(long, value_name = "DURATION")]
    pub recheck: Option<String>,
    /// With --recheck: rounds of rechecking (each after the delay) before a difference counts.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub recheck_rounds: u32,
    /// Save progress in DIR as chunks finish; the same command resumes from it after a crash
    /// or Ctrl-C (and refuses when tables, routes or options changed).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Pause while a status variable exceeds a limit on either side, e.g.
    /// `Threads_running=25` (comma-separated for several).
    #[arg(long, value_name = "VAR=MAX")]
    pub max_load: Option<String>,
    /// Pause while any --replica lags more than DURATION (or its replication is stopped).
    #[arg(long, value_name = "DURATION")]
    pub max_lag: Option<String>,
    /// A replica whose lag --max-lag watches (repeatable).
    #[arg(long, value_name = "DSN")]
    pub replica: Vec<String>,
    /// Read at most this many rows per second (per side).
    #[arg(long, value_name = "ROWS")]
    pub rate: Option<u64>,
    /// Compare only the rows matching this SQL condition (every table; per table in
    /// cutover.toml `[[diff.where]]`). Written for the source; used on both sides.
    #[arg(long = "where", value_name = "SQL")]
    pub where_: Option<String>,
    /// An expected schema difference, RULE[:PATTERN] (repeatable; added to `[accept] diff`
    /// of cutover.toml): RULE is `schema.` and the difference (`schema.collation`,
    /// `schema.type`, `schema.default`, `schema.*`, …), PATTERN a table or column
    /// (`shop.*`, `shop.orders.note`) or the change (`utf8mb4_general_ci->utf8mb4_bin`).
    /// Reported as accepted; a column missing on one side, once accepted, no longer makes
    /// its table different. Row differences cannot be accepted (leave a column out with
    /// --ignore-columns).
    #[arg(long, value_name = "RULE[:PATTERN]")]
    pub accept: Vec<String>,
    /// With --fix-sql: commit every N statements (each changes one row, a keyless table's
    /// DELETE … LIMIT n excepted), so a large fix stays under TiDB's transaction size limit
    /// (txn-total-size-limit, 100 MiB by default). 0: one transaction.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub fix_batch: u64,
    /// Write report.json, report.md, report.html (and fix.sql with --fix-sql) to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace every row value in reports and output by a hash (keys and values alike).
    #[arg(long)]
    pub redact_values: bool,
    /// Output: a human summary, or the JSON report on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: SandboxAction,
    /// The sandbox directory.
    #[arg(
        long,
        global = true,
        default_value = ".cutover-sandbox",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// Output: human lines, or JSON.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum SandboxAction {
    /// Start a source (server_id 1, ROW binlog, FULL row image) and a target (server_id 2).
    Up(SandboxUpArgs),
    /// Stop both servers and remove the directory.
    Down,
    /// Show the servers and their DSNs.
    Status,
}

/// What only `sandbox up` takes: how the servers are set up.
#[derive(Args, Debug, Clone, Copy)]
pub struct SandboxUpArgs {
    /// InnoDB buffer pool of each server, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub buffer_pool_mb: u64,
    /// Serve TLS, with certificates from a CA made for this sandbox (DIR/tls/ca.pem).
    #[arg(long)]
    pub tls: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows in the demo's largest table (at least 200000: the planted drift needs them).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(200_000..))]
    pub rows: u64,
    /// Where the reports (JSON, Markdown, HTML) and the fix SQL go; they outlive the sandbox.
    #[arg(long, default_value = "cutover-demo-report")]
    pub out: std::path::PathBuf,
    /// Output: the story as it runs, or (the story on stderr) a JSON summary on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// The target's flavor when no --target is given: tidb, mysql or mariadb.
    #[arg(long, value_name = "FLAVOR", default_value = "tidb")]
    pub target_flavor: String,
    /// Databases to check (comma-separated). Default: every non-system database.
    #[arg(long, value_delimiter = ',', value_name = "DB")]
    pub databases: Vec<String>,
    /// Tables to check: db.table or db.* patterns (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Tables to leave out: db.table or db.* (repeatable, or comma-separated; with
    /// cutover.toml's `[filter] exclude`).
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// ID spaces that run out within this time are errors.
    #[arg(long, value_name = "DURATION", default_value = "90d")]
    pub horizon: String,
    /// Read the ID counters twice, DURATION apart, to measure how fast they advance.
    #[arg(long, value_name = "DURATION")]
    pub sample: Option<String>,
    /// Earlier runs' counter readings (JSON lines); this run's readings are appended.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// TiDB server restarts a day, each of which can skip up to AUTO_ID_CACHE (30,000) IDs.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub tidb_restarts_per_day: f64,
    /// A snowflake layout to try instead of the known ones (twitter, sonyflake,
    /// uid-generator): 'epoch=2016-05-20,time_bits=28,worker_bits=22,seq_bits=13,unit=s'.
    #[arg(long, value_name = "LAYOUT")]
    pub snowflake: Option<String>,
    /// The worker-ID allocator table (db.table), when its shape is not recognised.
    #[arg(long, value_name = "DB.TABLE")]
    pub worker_table: Option<String>,
    /// A workload file (from `capture` or `proxy --record`): what its statements and
    /// transactions will meet on the target. Without a source, only the workload is checked.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    /// With --workload: two sessions writing one key closer than this is a conflict.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        requires = "workload"
    )]
    pub hot_window: String,
    /// Read the source's binlog for the transactions committed in the last DURATION and
    /// hold the largest against TiDB's transaction limits.
    #[arg(long, value_name = "DURATION", conflicts_with = "binlog_from")]
    pub transactions: Option<String>,
    /// Like --transactions, from this binlog position (FILE:POS) to the binlog's end.
    #[arg(long, value_name = "FILE:POS")]
    pub binlog_from: Option<String>,
    /// TiDB's txn-total-size-limit to hold transactions against (e.g. 100MiB).
    #[arg(long, value_name = "SIZE", default_value = "100MiB")]
    pub tidb_txn_limit: String,
    /// TiDB's txn-entry-size-limit (one row) to hold transactions against.
    #[arg(long, value_name = "SIZE", default_value = "6MiB")]
    pub tidb_entry_limit: String,
    /// TiDB's max-txn-ttl (how long a pessimistic transaction may live).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub tidb_txn_ttl: String,
    /// An expected finding, RULE[:PATTERN] (repeatable; added to `[accept] check` of
    /// cutover.toml), e.g. `schema.collation_change:utf8mb4_general_ci->utf8mb4_bin` or
    /// `schema.foreign_key:shop.*`: reported as accepted, in a section of its own, and not
    /// counted in the verdict or the exit code.
    #[arg(long, value_name = "RULE[:PATTERN]")]
    pub accept: Vec<String>,
    /// Write check.json, check.md and check.html to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output: a human report grouped by severity, or JSON on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Tables to verify: db.table or db.* (repeatable, or comma-separated). Default: every
    /// table outside the system schemas.
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Tables to leave out: db.table or db.* (repeatable, or comma-separated; with
    /// cutover.toml's `[filter] exclude`).
    #[arg(long, value_delimiter = ',', value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Where to start reading the source's binlog: `now`, FILE:POS, or a MariaDB GTID
    /// position (`0-1-42`, as in @@gtid_binlog_pos). Default: now, or where the checkpoint
    /// left off.
    #[arg(long, value_name = "now|FILE:POS|GTID")]
    pub start: Option<String>,
    /// Keep the binlog position and the pending keys in DIR, and continue from there when
    /// DIR holds them (after a crash, a restart or a Ctrl-C).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Serve Prometheus metrics on HOST:PORT (`/metrics`).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Learn the replicator's progress from a heartbeat row verify writes on the SOURCE
    /// every second into DB.TABLE (created when missing; verify's only write, and only with
    /// this flag). For replicators whose progress the target cannot tell.
    #[arg(long, value_name = "DB.TABLE", conflicts_with = "dm_checkpoint")]
    pub heartbeat: Option<String>,
    /// Learn the replicator's progress from DM's syncer checkpoint table on the target
    /// (`dm_meta.<task>_syncer_checkpoint`).
    #[arg(long, value_name = "DB.TABLE")]
    pub dm_checkpoint: Option<String>,
    /// Check only shard I of N (0-based) of the changed keys, split by a stable hash of table
    /// and key, so N processes share one large stream.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// How long a difference may persist after the replicator has caught up past the change
    /// before it is a confirmed mismatch.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub grace: String,
    /// Stop after DURATION (default: run until SIGINT/SIGTERM).
    #[arg(long = "for", value_name = "DURATION")]
    pub run_for: Option<String>,
    /// The server id to read the binlog with (must differ from every replica's).
    #[arg(long, value_name = "ID")]
    pub server_id: Option<u32>,
    /// Output: a human summary, or JSON on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write mismatches.jsonl (each confirmed mismatch as it is confirmed) and verify.json
    /// to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub action: DrillAction,
}

#[derive(Subcommand, Debug)]
pub enum DrillAction {
    /// Run a runbook's steps in order: timed, announced, gated, journaled. Exit 0 completed,
    /// 1 a step failed or a gate rolled the drill back, 2 could not run, 130 interrupted.
    Run(DrillRunArgs),
    /// Say a manual step is done (its DRI), or approve or reject a step waiting for approval.
    Ack(DrillAckArgs),
    /// What runs now, who must act, elapsed and expected end.
    Status(DrillStatusArgs),
    /// One drill's timeline and estimate-vs-actual per step, or several drills side by side.
    Report(DrillReportArgs),
}

#[derive(Args, Debug)]
pub struct DrillRunArgs {
    /// The runbook (TOML).
    #[arg(value_name = "RUNBOOK")]
    pub runbook: PathBuf,
    /// The drill's journal directory (one drill per directory).
    #[arg(long, value_name = "DIR")]
    pub journal: PathBuf,
    /// Run only the steps with `side_effects = false`; announce the others as skipped.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the drill in --journal at its first step not completed (refused when the
    /// runbook changed).
    #[arg(long, conflicts_with = "from")]
    pub resume: bool,
    /// With --resume: end (SIGTERM, then SIGKILL) the process group of a step's command that
    /// the stopped drill started and that still runs, instead of waiting for it to end. Either
    /// way the step is not started again: its DRI confirms it with `drill ack` or `--reject`.
    #[arg(long, requires = "resume")]
    pub kill_orphans: bool,
    /// Start at this step (the steps before it are recorded as skipped).
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Serve Prometheus metrics (current step, elapsed, overrun) on ADDR, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Output at the end: a human line, or JSON (the outcome and the journal).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct DrillAckArgs {
    /// The step's id.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// The drill's journal directory.
    #[arg(long, value_name = "DIR")]
    pub journal: PathBuf,
    /// Your name as the runbook writes it (recorded with your operating-system user).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Approve a step that waits for approvals.
    #[arg(long, conflicts_with = "reject")]
    pub approve: bool,
    /// Reject a step that waits for approvals (it fails), or, as the DRI of a manual step,
    /// report that it failed.
    #[arg(long)]
    pub reject: bool,
    /// Output: a human line, or JSON.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct DrillStatusArgs {
    /// The drill's journal directory.
    #[arg(long, value_name = "DIR")]
    pub journal: PathBuf,
    /// Output: human lines, or JSON.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct DrillReportArgs {
    /// The drills' journal directories, oldest first (repeat the flag for several).
    #[arg(
        long = "journal",
        value_name = "DIR",
        required_unless_present = "journal_dirs"
    )]
    pub journals: Vec<PathBuf>,
    /// Journal directories as arguments: an older spelling of --journal.
    #[arg(value_name = "JOURNAL_DIR", hide = true)]
    pub journal_dirs: Vec<PathBuf>,
    /// Output: a human report, or JSON on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write drill.md, drill.html and drill.json to DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Older spellings still accepted as hidden aliases, per command: (old, new). Each one used
/// prints one deprecation line on stderr.
fn deprecated_spellings(cli: &Cli) -> &'static [(&'static str, &'static str)] {
    match &cli.command {
        Command::Diff(_) => &[("--skip", "--exclude")],
        Command::Capture(_) => &[("--out", "--output")],
        Command::Workload(w) if matches!(w.action, WorkloadAction::Filter { .. }) => {
            &[("--out", "--output")]
        }
        Command::Proxy(_) => &[("--record", "--output")],
        _ => &[],
    }
}

/// Says, once each, which older spellings the command line used.
pub fn warn_deprecated(cli: &Cli) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for (old, new) in deprecated_spellings(cli) {
        let eq = format!("{old}=");
        if args.iter().any(|a| a == old || a.starts_with(&eq)) {
            crate::out::deprecated(old, new);
        }
    }
    if let Command::Drill(DrillArgs {
        action: DrillAction::Report(r),
    }) = &cli.command
    {
        if !r.journal_dirs.is_empty() {
            crate::out::deprecated("JOURNAL_DIR arguments", "--journal DIR");
        }
    }
}
