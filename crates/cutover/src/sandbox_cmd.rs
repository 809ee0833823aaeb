//! `cutover sandbox up|down|status`.

use anyhow::Result;
use cutover_sandbox::{Sandbox, Settings};

use crate::cli::{Format, SandboxAction, SandboxArgs};

pub fn run(args: SandboxArgs) -> Result<u8> {
    match args.action {
        SandboxAction::Up(up) => {
            let settings = Settings {
                buffer_pool_mb: up.buffer_pool_mb,
                tls: up.tls,
                ..Settings::default()
            };
            let sb = Sandbox::up(&args.dir, &settings)?;
            print(&sb, args.format, true, 0);
        }
        SandboxAction::Down => {
            Sandbox::down(&args.dir)?;
            match args.format {
                Format::Human => outln!("sandbox in {} stopped and removed", args.dir.display()),
                Format::Json => {
                    let _ =
                        crate::out::json(0, serde_json::json!({"dir": args.dir, "removed": true}));
                }
            }
        }
        SandboxAction::Status => {
            let sb = Sandbox::load(&args.dir)?;
            let code = if sb.source.is_alive() && sb.target.is_alive() {
                0
            } else {
                2
            };
            print(&sb, args.format, false, code);
            return Ok(code);
        }
    }
    Ok(0)
}

fn print(sb: &Sandbox, format: Format, started: bool, code: u8) {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "dir": sb.dir,
                "server_version": sb.version,
                "tls_ca": sb.tls_ca,
                "source": {"dsn": sb.source.dsn(None), "port": sb.source.port,
                           "socket": sb.source.socket, "pid": sb.source.pid,
                           "running": sb.source.is_alive()},
                "target": {"dsn": sb.target.dsn(None), "port": sb.target.port,
                           "socket": sb.target.socket, "pid": sb.target.pid,
                           "running": sb.target.is_alive()},
            });
            let _ = crate::out::json(code, v);
        }
        Format::Human => {
            if started {
                outln!("sandbox started in {} ({})", sb.dir.display(), sb.version);
            }
            for s in [&sb.source, &sb.target] {
                outln!(
                    "{:6} {}  server_id={} pid={} {}",
                    s.role,
                    s.dsn(None),
                    s.server_id,
                    s.pid,
                    if s.is_alive() { "running" } else { "stopped" }
                );
            }
            if let Some(ca) = &sb.tls_ca {
                outln!(
                    "TLS: add ?ssl-mode=verify-identity&ssl-ca={} to a DSN",
                    ca.display()
                );
            }
            outln!(
                "user `app` has password `{}`; try: cutover diff --source {} --target {}",
                cutover_sandbox::APP_PASSWORD,
                sb.source.dsn(None),
                sb.target.dsn(None)
            );
        }
    }
}
