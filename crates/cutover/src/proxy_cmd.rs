//! `cutover proxy`: relays clients to a server unchanged and records their commands and the
//! server's answers into a workload file. Writes nothing to any database: it only forwards
//! what clients send (their writes are theirs).

use std::io::Write;

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
    if let Some(dir) = args.record.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(anyhow!(
                "--record: the directory {} does not exist",
                dir.display()
            ));
        }
    }
    let cancel = CancellationToken::new();
    crate::diff_cmd::spawn_ctrl_c(cancel.clone());
    let opts = ProxyOptions {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        record: args.record.clone(),
        queue: 100_000,
    };
    let upstream = args.upstream.clone();
    let summary = cutover_proxy::run(opts, cancel, |addr| {
        eprintln!("cutover proxy: listening on {addr}, relaying to {upstream}");
    })
    .await
    .context("proxy")?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
        Format::Human => human(&summary, &args.record),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(0)
}

fn human(s: &Summary, record: &std::path::Path) -> String {
    let mut out = format!(
        "proxy: {} connections, {} records written to {}\n",
        s.connections,
        s.records,
        record.display()
    );
    if s.dropped > 0 {
        out.push_str(&format!(
            "warning: {} records dropped (the writer could not keep up)\n",
            s.dropped
        ));
    }
    if s.undecodable_connections > 0 {
        out.push_str(&format!(
            "warning: {} connections could not be fully decoded (TLS, or packets the decoder \
             did not understand); they were relayed unchanged\n",
            s.undecodable_connections
        ));
    }
    out
}
