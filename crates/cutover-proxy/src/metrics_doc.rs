//! Prometheus metrics of the proxy (`--metrics-addr`), through the `metrics` facade: without
//! an installed exporter every call is a no-op.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `cutover_proxy_connections_total` | counter | client connections accepted |
//! | `cutover_proxy_connections_active` | gauge | connections being relayed |
//! | `cutover_proxy_tls_connections_total` | counter | connections whose TLS the proxy terminated |
//! | `cutover_proxy_tls_failures_total` | counter | connections closed: TLS could not be set up on a leg |
//! | `cutover_proxy_bytes_total{from}` | counter | bytes relayed, `from` = `client` or `server` |
//! | `cutover_proxy_commands_total{command}` | counter | commands decoded, by kind (`query`, `execute`, …) |
//! | `cutover_proxy_errors_total` | counter | commands the server answered with an error |
//! | `cutover_proxy_latency_seconds` | histogram | from a command to the end of its answer |
//! | `cutover_proxy_records_total` | counter | records written to the workload |
//! | `cutover_proxy_records_dropped_total` | counter | records dropped: the writer could not keep up |
//! | `cutover_proxy_undecodable_connections_total` | counter | connections relayed but not (fully) decoded |
//! | `cutover_proxy_files_rotated_total` | counter | workload parts begun after the first |
//! | `cutover_proxy_files_removed_total` | counter | oldest parts removed to stay within `--max-files` |
//! | `cutover_proxy_accept_errors_total` | counter | failed accepts of clients (out of descriptors, …), each followed by a pause |

/// Every metric, for the `# HELP` lines and so a scrape shows them all from the start.
pub const NAMES: &[&str] = &[
    "cutover_proxy_connections_total",
    "cutover_proxy_connections_active",
    "cutover_proxy_tls_connections_total",
    "cutover_proxy_tls_failures_total",
    "cutover_proxy_bytes_total",
    "cutover_proxy_commands_total",
    "cutover_proxy_errors_total",
    "cutover_proxy_latency_seconds",
    "cutover_proxy_records_total",
    "cutover_proxy_records_dropped_total",
    "cutover_proxy_undecodable_connections_total",
    "cutover_proxy_files_rotated_total",
    "cutover_proxy_files_removed_total",
    "cutover_proxy_accept_errors_total",
];

/// Describes every metric and serves each from the start (zero until something happens).
pub fn describe() {
    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
    describe_counter!(
        "cutover_proxy_connections_total",
        "Client connections accepted"
    );
    describe_gauge!(
        "cutover_proxy_connections_active",
        "Connections being relayed"
    );
    describe_counter!(
        "cutover_proxy_tls_connections_total",
        "Connections whose TLS the proxy terminated"
    );
    describe_counter!(
        "cutover_proxy_tls_failures_total",
        "Connections closed because TLS could not be set up on one leg"
    );
    describe_counter!("cutover_proxy_bytes_total", Unit::Bytes, "Bytes relayed");
    describe_counter!("cutover_proxy_commands_total", "Commands decoded, by kind");
    describe_counter!(
        "cutover_proxy_errors_total",
        "Commands the server answered with an error"
    );
    describe_histogram!(
        "cutover_proxy_latency_seconds",
        Unit::Seconds,
        "From a command to the end of its answer"
    );
    describe_counter!(
        "cutover_proxy_records_total",
        "Records written to the workload"
    );
    describe_counter!(
        "cutover_proxy_records_dropped_total",
        "Records dropped because the writer could not keep up"
    );
    describe_counter!(
        "cutover_proxy_undecodable_connections_total",
        "Connections relayed but not fully decoded"
    );
    describe_counter!(
        "cutover_proxy_accept_errors_total",
        "Failed accepts of clients (out of file descriptors, ...), each followed by a pause"
    );
    describe_counter!(
        "cutover_proxy_files_rotated_total",
        "Workload parts begun after the first"
    );
    describe_counter!(
        "cutover_proxy_files_removed_total",
        "Oldest workload parts removed to stay within the bound"
    );
    for name in NAMES {
        match *name {
            "cutover_proxy_connections_active" => gauge!(*name).set(0.0),
            "cutover_proxy_latency_seconds" => {}
            "cutover_proxy_bytes_total" => {
                counter!(*name, "from" => "client").absolute(0);
                counter!(*name, "from" => "server").absolute(0);
            }
            "cutover_proxy_commands_total" => {}
            _ => counter!(*name).absolute(0),
        }
    }
}
