//! `cutover workload stats|head|filter`: inspect and cut workload files.

use std::io::Write;

use anyhow::{anyhow, Result};
use cutover_core::duration::parse_duration;
use cutover_workload::{Filter, Header, Reader, Stats, Writer};

use crate::cli::{Format, WorkloadAction, WorkloadArgs};

pub fn run(args: WorkloadArgs) -> Result<u8> {
    match args.action {
        WorkloadAction::Stats { file, top, format } => {
            let mut stats = Stats::default();
            let reader = Reader::open(&file)?;
            let header = reader.header.clone();
            for r in reader {
                stats.add(&r?);
            }
            let s = stats.finish(top);
            match format {
                Format::Json => {
                    let mut v = crate::out::body(&s);
                    v["workload"] = file.display().to_string().into();
                    v["source"] = header.source.clone().into();
                    v["format_version"] = header.version.into();
                    v["span_s"] = s.span_s().into();
                    let _ = crate::out::json(0, v);
                }
                Format::Human => {
                    let _ = crate::out::text(&human_stats(&header, &s));
                }
            }
        }
        WorkloadAction::Head {
            file,
            lines,
            format,
        } => {
            let reader = Reader::open(&file)?;
            match format {
                Format::Json => {
                    let records = reader
                        .take(lines)
                        .map(|r| r.map(|r| crate::out::body(&r)))
                        .collect::<Result<Vec<_>, _>>()?;
                    let _ = crate::out::json(
                        0,
                        serde_json::json!({
                            "workload": file.display().to_string(),
                            "records": records,
                        }),
                    );
                }
                Format::Human => {
                    let mut o = std::io::stdout().lock();
                    for r in reader.take(lines) {
                        let line = serde_json::to_string(&r?).unwrap_or_default();
                        // A closed pipe (`| head`) ends the listing.
                        if writeln!(o, "{line}").is_err() {
                            break;
                        }
                    }
                    let _ = o.flush();
                }
            }
        }
        WorkloadAction::Filter {
            file,
            output,
            from,
            until,
            session,
            database,
            fingerprint,
            format,
        } => {
            let from = from
                .map(|s| parse_duration(&s).map_err(|e| anyhow!("--from: {e}")))
                .transpose()?;
            let until = until
                .map(|s| parse_duration(&s).map_err(|e| anyhow!("--until: {e}")))
                .transpose()?;
            if file == output {
                return Err(anyhow!(
                    "--output must be another file than the workload read"
                ));
            }
            // Times are relative to the first record, so read it first.
            let first_ts = match Reader::open(&file)?.next() {
                Some(r) => r?.ts_us,
                None => 0,
            };
            let filter = Filter {
                from_us: from.map(|d| first_ts + d.as_micros() as i64),
                until_us: until.map(|d| first_ts + d.as_micros() as i64),
                sessions: session,
                databases: database,
                fingerprints: fingerprint,
            };
            let reader = Reader::open(&file)?;
            // A cut of a redacted workload is redacted too.
            let header = Header {
                redacted: reader.header.redacted,
                ..Header::new("filter", Some(file.display().to_string()))
            };
            let mut w = Writer::create(&output, &header)?;
            let mut read = 0u64;
            for r in reader {
                let r = r?;
                read += 1;
                if filter.keeps(&r) {
                    w.write(&r)?;
                }
            }
            let kept = w.finish()?;
            match format {
                Format::Human => outln!(
                    "filter: kept {kept} of {read} records in {}",
                    output.display()
                ),
                Format::Json => {
                    let _ = crate::out::json(
                        0,
                        serde_json::json!({
                            "workload": file.display().to_string(),
                            "output": output.display().to_string(),
                            "read": read,
                            "kept": kept,
                        }),
                    );
                }
            }
        }
    }
    Ok(0)
}

fn human_stats(h: &Header, s: &Stats) -> String {
    let mut out = format!(
        "workload: {} (format version {}), {} records, {} sessions, {:.1} s\n",
        h.source,
        h.version,
        s.records,
        s.sessions,
        s.span_s()
    );
    let cmds: Vec<String> = s.commands.iter().map(|(k, n)| format!("{k} {n}")).collect();
    out.push_str(&format!("commands: {}\n", cmds.join(", ")));
    let dbs: Vec<String> = s
        .databases
        .iter()
        .map(|(k, n)| format!("{} {n}", if k.is_empty() { "(none)" } else { k }))
        .collect();
    out.push_str(&format!("statements by database: {}\n", dbs.join(", ")));
    out.push_str(&format!(
        "{} statement classes; with a response summary: {}\n",
        s.classes, s.with_response
    ));
    for (f, n) in &s.top_classes {
        out.push_str(&format!("  {n:>8}  {f}\n"));
    }
    out
}
