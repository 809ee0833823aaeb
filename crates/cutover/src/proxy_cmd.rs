//! `cutover proxy`: relays clients to a server unchanged and records their commands and the
//! server's answers into a workload file. Writes nothing to any database: it only forwards
//! what clients send (their writes are theirs).

use anyhow::{anyhow, Context, Result};
use cutover_proxy::{ProxyOptions, Summary};
use tokio_util::sync::CancellationToken;

use crate::cli::{Format, ProxyArgs};

pub async fn run(args: ProxyArgs) -> Result<u8> {
    // Checked before listening: the upstream must be HOST:PORT.
    let valid = args
        .upstream
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        return Err(anyhow!("--upstream: `{}` is not HOST:PORT", args.upstream));
    }
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(anyhow!(
                "--output: the directory {} does not exist",
                dir.display()
            ));
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let host = args
                .upstream
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or_default();
            Some(
                cutover_proxy::Tls::new(cert, key, args.upstream_ssl_ca.as_deref(), host)
                    .map_err(|e| anyhow!("--tls-cert/--tls-key: {e}"))?,
            )
        }
        _ => None,
    };
    if let Some(a) = &args.metrics_addr {
        let addr: std::net::SocketAddr = a
            .parse()
            .map_err(|_| anyhow!("--metrics-addr: `{a}` is not HOST:PORT"))?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("cutover_proxy_latency_seconds".into()),
                &[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                ],
            )
            .and_then(|b| b.install())
            .map_err(|e| anyhow!("--metrics-addr {addr}: {e}"))?;
    }
    let cancel = CancellationToken::new();
    crate::diff_cmd::spawn_ctrl_c(cancel.clone());
    let opts = ProxyOptions {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        record: args.output.clone(),
        queue: 100_000,
        tls,
        rotate_bytes: args.rotate_mib.saturating_mul(1024 * 1024),
        max_files: usize::try_from(args.max_files).unwrap_or(usize::MAX),
        redact: args.redact_values,
    };
    let upstream = args.upstream.clone();
    let summary = cutover_proxy::run(
        opts,
        cancel,
        |addr| {
            errln!("cutover proxy: listening on {addr}, relaying to {upstream}");
        },
        |warning| errln!("cutover proxy: warning: {warning}"),
    )
    .await
    .context("proxy")?;
    match args.format {
        Format::Json => {
            let mut v = crate::out::body(&summary);
            v["output"] = args.output.display().to_string().into();
            let _ = crate::out::json(0, v);
        }
        Format::Human => {
            let _ = crate::out::text(&human(&summary, &args.output));
        }
    }
    Ok(0)
}

fn human(s: &Summary, record: &std::path::Path) -> String {
    let mut out = format!(
        "proxy: {} connections, {} records written to {}\n",
        s.connections,
        s.records,
        match s.files.len() {
            0 | 1 => record.display().to_string(),
            n => format!(
                "{n} parts ({} … {})",
                s.files[0].display(),
                s.files[n - 1].display()
            ),
        }
    );
    if s.tls_connections > 0 {
        out.push_str(&format!(
            "{} connections over TLS (terminated by the proxy)\n",
            s.tls_connections
        ));
    }
    if s.tls_failures > 0 {
        out.push_str(&format!(
            "warning: {} connections closed: TLS could not be set up ({})\n",
            s.tls_failures,
            s.last_tls_failure.as_deref().unwrap_or("")
        ));
    }
    if s.accept_errors > 0 {
        out.push_str(&format!(
            "warning: accepting a client failed {} times (out of file descriptors?); the proxy paused and retried\n",
            s.accept_errors
        ));
    }
    if !s.removed_files.is_empty() {
        out.push_str(&format!(
            "warning: {} oldest parts removed to stay within --max-files\n",
            s.removed_files.len()
        ));
    }
    if s.dropped > 0 {
        out.push_str(&format!(
            "warning: {} records dropped (the writer could not keep up)\n",
            s.dropped
        ));
    }
    if s.undecodable_connections > 0 {
        out.push_str(&format!(
            "warning: {} connections could not be fully decoded (TLS, or packets the decoder \
             did not understand; TLS is decoded only with --tls-cert/--tls-key); they were \
             relayed unchanged\n",
            s.undecodable_connections
        ));
    }
    out
}
