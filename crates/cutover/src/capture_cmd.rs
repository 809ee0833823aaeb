//! `cutover capture`: a general or slow query log into a workload file. Reads files only.

use std::io::{BufRead, BufReader, Write};

use anyhow::{anyhow, Result};
use cutover_capture::LineError;
use cutover_workload::{Header, Record, Stats, Writer};
use serde_json::json;

use crate::cli::{CaptureArgs, Format, LogKind};

/// Line errors printed one by one; the rest are counted.
const SHOWN_ERRORS: usize = 20;

pub fn run(args: CaptureArgs) -> Result<u8> {
    let input: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| anyhow!("cannot read {}: {e}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let (source, records): (&str, Box<dyn Iterator<Item = Result<Record, LineError>>>) =
        match args.from {
            LogKind::GeneralLog => (
                "general-log",
                Box::new(cutover_capture::general::GeneralLog::new(input)),
            ),
            LogKind::SlowLog => (
                "slow-log",
                Box::new(cutover_capture::slow::SlowLog::new(input)),
            ),
        };
    let header = Header::new(source, Some(args.input.display().to_string()));
    let mut out = Writer::create(&args.out, &header)?;
    let mut stats = Stats::default();
    let mut errors = 0u64;
    let input_name = args.input.display().to_string();
    for r in records {
        match r {
            Ok(r) => {
                stats.add(&r);
                out.write(&r)?;
            }
            Err(e) => {
                if args.strict {
                    // The partial file is useless: remove it rather than leave a trap.
                    drop(out);
                    let _ = std::fs::remove_file(&args.out);
                    return Err(anyhow!("{input_name}:{}: {}", e.line, e.message));
                }
                errors += 1;
                if errors as usize <= SHOWN_ERRORS {
                    eprintln!(
                        "cutover: warning: {input_name}:{}: {} (skipped)",
                        e.line, e.message
                    );
                }
            }
        }
    }
    out.finish()?;
    if errors as usize > SHOWN_ERRORS {
        eprintln!(
            "cutover: warning: {} more unreadable entries skipped",
            errors as usize - SHOWN_ERRORS
        );
    }
    let s = stats.finish(0);
    let text = match args.format {
        Format::Json => {
            serde_json::to_string_pretty(&json!({
                "version": env!("CARGO_PKG_VERSION"),
                "workload": args.out.display().to_string(),
                "source": source,
                "records": s.records,
                "sessions": s.sessions,
                "statements": s.commands.get("query").copied().unwrap_or(0),
                "skipped_entries": errors,
                "span_s": s.span_s(),
            }))
            .unwrap_or_default()
                + "\n"
        }
        Format::Human => format!(
            "capture: {} records ({} statements) in {} sessions over {:.1} s written to {}; {} unreadable entries skipped\n",
            s.records,
            s.commands.get("query").copied().unwrap_or(0),
            s.sessions,
            s.span_s(),
            args.out.display(),
            errors
        ),
    };
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
    Ok(0)
}
