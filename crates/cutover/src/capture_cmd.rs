//! `cutover capture`: a general or slow query log, or a packet capture, into a workload
//! file. Reads files only.

use std::io::{BufRead, BufReader, Read};

use anyhow::{anyhow, Result};
use cutover_capture::pcap::{PcapFailure, PcapOptions};
use cutover_capture::LineError;
use cutover_workload::{Header, Record, Stats, Writer};
use serde_json::json;

use crate::cli::{CaptureArgs, Format, LogKind};

/// Line errors printed one by one; the rest are counted.
const SHOWN_ERRORS: usize = 20;

pub fn run(args: CaptureArgs) -> Result<u8> {
    if args.from == LogKind::Pcap {
        return pcap(args);
    }
    let (input, shown) = open_input(&args)?;
    let input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, input));
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
            LogKind::Pcap => return pcap(args),
        };
    let header = Header::new(source, Some(args.input.display().to_string()));
    let mut out = Writer::create(&args.output, &header)?;
    let mut stats = Stats::default();
    let mut errors = 0u64;
    let input_name = args.input.display().to_string();
    for r in records {
        match r {
            Ok(r) => {
                stats.add(&r);
                out.write(&r)?;
                shown.record();
            }
            Err(e) => {
                if args.strict {
                    // The unfinished file is removed by the writer; an older workload of
                    // that name goes too, so --output never holds one this run did not make.
                    drop(out);
                    let _ = std::fs::remove_file(&args.output);
                    return Err(anyhow!("{input_name}:{}: {}", e.line, e.message));
                }
                errors += 1;
                if errors as usize <= SHOWN_ERRORS {
                    errln!(
                        "cutover: warning: {input_name}:{}: {} (skipped)",
                        e.line,
                        e.message
                    );
                }
            }
        }
    }
    out.finish()?;
    shown.finish();
    if errors as usize > SHOWN_ERRORS {
        errln!(
            "cutover: warning: {} more unreadable entries skipped",
            errors as usize - SHOWN_ERRORS
        );
    }
    let s = stats.finish(0);
    let text = match args.format {
        Format::Json => {
            let _ = crate::out::json(
                0,
                json!({
                    "workload": args.output.display().to_string(),
                    "source": source,
                    "records": s.records,
                    "sessions": s.sessions,
                    "statements": s.commands.get("query").copied().unwrap_or(0),
                    "skipped_entries": errors,
                    "span_s": s.span_s(),
                }),
            );
            return Ok(0);
        }
        Format::Human => format!(
            "capture: {} records ({} statements) in {} sessions over {:.1} s written to {}; {} unreadable entries skipped\n",
            s.records,
            s.commands.get("query").copied().unwrap_or(0),
            s.sessions,
            s.span_s(),
            args.output.display(),
            errors
        ),
    };
    let _ = crate::out::text(&text);
    Ok(0)
}

/// The input (a file, or standard input for `-`) counted as it is read, and the progress
/// that shows it.
fn open_input(
    args: &CaptureArgs,
) -> Result<(
    crate::progress::capture::Counting<Box<dyn Read + Send>>,
    crate::progress::capture::CaptureProgress,
)> {
    let (input, size): (Box<dyn Read + Send>, _) = if args.input.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| anyhow!("cannot read {}: {e}", args.input.display()))?;
        // A regular file's size is the total; a pipe or device has none.
        let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(f), size)
    };
    let shown = crate::progress::capture::CaptureProgress::start(size);
    Ok((shown.counting(input), shown))
}

/// Gaps printed one by one on stderr; the rest are in the summary's counts.
const SHOWN_GAPS: usize = 20;

/// `--from pcap`: a packet capture, reassembled and decoded.
fn pcap(args: CaptureArgs) -> Result<u8> {
    if args.port.is_empty() || args.port.contains(&0) {
        return Err(anyhow!("--port: give one or more TCP ports (1-65535)"));
    }
    let (input, shown) = open_input(&args)?;
    let input_name = args.input.display().to_string();
    let header = Header::new("pcap", Some(input_name.clone()));
    let mut out = Writer::create(&args.output, &header)?;
    let mut stats = Stats::default();
    let opts = PcapOptions {
        ports: args.port.clone(),
        ..PcapOptions::default()
    };
    let result =
        cutover_capture::pcap::capture(BufReader::with_capacity(1 << 16, input), &opts, |r| {
            stats.add(&r);
            shown.record();
            out.write(&r)
        });
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&args.output);
            return Err(match e {
                PcapFailure::Input(m) => anyhow!("{input_name}: {m}"),
                PcapFailure::Sink(e) => e.into(),
            });
        }
    };
    shown.finish();
    if args.strict && (summary.gaps > 0 || summary.file_problem.is_some()) {
        drop(out);
        let _ = std::fs::remove_file(&args.output);
        return Err(anyhow!(
            "{input_name}: {} gaps ({} bytes lost){} (--strict)",
            summary.gaps,
            summary.bytes_lost,
            summary
                .file_problem
                .as_ref()
                .map(|p| format!("; {p}"))
                .unwrap_or_default()
        ));
    }
    out.finish()?;
    for g in summary.gap_list.iter().take(SHOWN_GAPS) {
        let (from, to) = if g.from == "client" {
            (&g.client, &g.server)
        } else {
            (&g.server, &g.client)
        };
        errln!(
            "cutover: warning: session {} ({} -> {}): {} bytes the capture missed; decoding resumed at the session's next command",
            g.session, from, to, g.bytes
        );
    }
    if summary.gaps as usize > SHOWN_GAPS {
        errln!(
            "cutover: warning: {} more gaps",
            summary.gaps as usize - SHOWN_GAPS
        );
    }
    if let Some(p) = &summary.file_problem {
        errln!("cutover: warning: {input_name}: {p}; what came before it was captured");
    }
    if !summary.unsupported_link_types.is_empty() {
        errln!(
            "cutover: warning: {input_name}: packets of link types {:?} skipped (not read)",
            summary.unsupported_link_types
        );
    }
    if summary.connections == 0 {
        errln!(
            "cutover: warning: {input_name}: no TCP connection to port {} in {} packets",
            args.port
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            summary.packets
        );
    }
    let s = stats.finish(0);
    let statements = s.commands.get("query").copied().unwrap_or(0)
        + s.commands.get("execute").copied().unwrap_or(0);
    let text = match args.format {
        Format::Json => {
            let mut v = json!({
                "workload": args.output.display().to_string(),
                "source": "pcap",
                "records": s.records,
                "sessions": s.sessions,
                "statements": statements,
                "span_s": s.span_s(),
            });
            if let (Some(o), Ok(serde_json::Value::Object(p))) =
                (v.as_object_mut(), serde_json::to_value(&summary))
            {
                o.extend(p);
            }
            let _ = crate::out::json(0, v);
            return Ok(0);
        }
        Format::Human => format!(
            "capture: {} records ({} statements) in {} sessions over {:.1} s written to {}\n\
             pcap: {} packets, {} connections to {} servers; {} began before the capture \
             (user, database, earlier prepared statements unknown; {} executes of unknown statements); \
             {} gaps ({} bytes lost) in {} damaged sessions; {} undecodable sessions; {} without a decodable command\n",
            s.records,
            statements,
            s.sessions,
            s.span_s(),
            args.output.display(),
            summary.packets,
            summary.connections,
            summary.servers,
            summary.mid_stream_sessions,
            summary.unknown_statement_executes,
            summary.gaps,
            summary.bytes_lost,
            summary.damaged_sessions,
            summary.undecodable_sessions,
            summary.sessions_without_commands,
        ),
    };
    let _ = crate::out::text(&text);
    Ok(0)
}
