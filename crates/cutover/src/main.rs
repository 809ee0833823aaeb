//! The `cutover` binary: parses arguments, wires the engine crates together, prints.
//! Nothing here computes a verdict; it only decides how to show one and which exit code
//! it gives (0 equal, 1 differences, 2 could not compare, 130 interrupted).

/// `print!` that never panics on a closed stdout (see `out.rs`).
macro_rules! out {
    ($($t:tt)*) => {{ let _ = $crate::out::stdout(format_args!($($t)*)); }};
}
/// `println!` that never panics on a closed stdout (see `out.rs`).
macro_rules! outln {
    () => {{ let _ = $crate::out::stdout(format_args!("\n")); }};
    ($($t:tt)*) => {{ let _ = $crate::out::stdout(format_args!("{}\n", format_args!($($t)*))); }};
}
/// `eprint!` that never panics (see `out.rs`).
#[allow(unused_macros)]
macro_rules! err {
    ($($t:tt)*) => {{ $crate::out::stderr(format_args!($($t)*)); }};
}
/// `eprintln!` that never panics (see `out.rs`).
macro_rules! errln {
    () => {{ $crate::out::stderr(format_args!("\n")); }};
    ($($t:tt)*) => {{ $crate::out::stderr(format_args!("{}\n", format_args!($($t)*))); }};
}

mod capture_cmd;
mod check_cmd;
mod cli;
mod demo;
mod diff_cmd;
mod drill_cmd;
mod drill_report;
mod endpoints;
mod fix_out;
mod out;
mod probe_cmd;
mod progress;
mod proxy_cmd;
mod render;
mod replay_cmd;
mod sandbox_cmd;
mod verify_cmd;
mod workload_cmd;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let command = cli::Cli::command();
    let matches = command.clone().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut cli::Cli::command()).exit(),
    };
    out::begin(&matches, &command);
    cli::warn_deprecated(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("cutover: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        progress::configure(cli.quiet, &cli.progress_interval)?;
        // Commands that take nothing from the config still read it: `--help` says every
        // command does, and a broken or missing file is an error wherever it is given.
        if matches!(
            cli.command,
            cli::Command::Sandbox(_)
                | cli::Command::Drill(_)
                | cli::Command::Capture(_)
                | cli::Command::Workload(_)
                | cli::Command::Proxy(_)
        ) {
            diff_cmd::load_config(cli.config.as_deref())?;
        }
        match cli.command {
            cli::Command::Diff(args) => diff_cmd::run(cli.config.as_deref(), *args).await,
            cli::Command::Sandbox(args) => sandbox_cmd::run(args),
            cli::Command::Demo(args) => demo::run(args).await,
            cli::Command::Check(args) => check_cmd::run(cli.config.as_deref(), *args).await,
            cli::Command::Verify(args) => verify_cmd::run(cli.config.as_deref(), *args).await,
            cli::Command::Drill(args) => drill_cmd::run(args).await,
            cli::Command::Capture(args) => capture_cmd::run(args),
            cli::Command::Replay(args) => replay_cmd::run(*args).await,
            cli::Command::Workload(args) => workload_cmd::run(args),
            cli::Command::Proxy(args) => proxy_cmd::run(args).await,
            cli::Command::Probe(args) => probe_cmd::run(cli.config.as_deref(), args).await,
        }
    });
    // Pools close in the background; do not wait for idle connections to say goodbye.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            errln!("cutover: error: {}", one_line(&chain(&e)));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, each cause said once: an error whose message already ends with
/// its source's text (`cannot read x: No such file (os error 2)`) does not repeat it.
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
