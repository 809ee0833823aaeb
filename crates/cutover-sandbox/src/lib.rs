//! Local source/target server pairs, started from the installed MariaDB (`mariadbd`).
//!
//! The same code serves `cutover sandbox up|down|status`, `cutover demo` and every
//! integration test, so what the tests exercise is what users run. A sandbox is a directory:
//!
//! ```text
//! DIR/sandbox.json        ports, pids, DSNs (what `status` and `down` read)
//! DIR/source/             data directory of the source (server_id 1, ROW binlog, FULL image)
//! DIR/target/             data directory of the target (server_id 2)
//! DIR/init.sql            users created at every start
//! ```
//!
//! Servers listen on 127.0.0.1 on free ports and on a unix socket in their data directory.
//! They accept `root` without a password and `app` with the password [`APP_PASSWORD`] from
//! any host, with all privileges.
//!
//! Replication: [`Sandbox::start_replication`] makes the target a replica of the source from
//! the source's binlog position at that moment (classic file/position replication as `root`;
//! nothing written earlier is replayed), [`Sandbox::wait_replica_caught_up`] waits until the
//! target has applied everything the source has logged, and [`Sandbox::stop_replication`]
//! stops the replica threads (the configuration stays, so `SHOW SLAVE STATUS` then reports a
//! stopped replica with `Seconds_Behind_Master` NULL). A change made on the source in a
//! session with `SET SESSION sql_log_bin = 0` is not logged and so never reaches the target:
//! that is how tests simulate a lost change. [`Server::sql`] runs SQL on one server.
//!
//! Tests use [`Sandbox::start_owned`]: the servers are tied to the test process by a small
//! watchdog that stops them and removes the directory when that process exits, however it
//! exits, so no test leaves servers behind.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Password of the `app` user every sandbox server has.
pub const APP_PASSWORD: &str = "app-secret";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error("{0} not found: install MariaDB (apt-get install mariadb-server)")]
    NotInstalled(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("initialising the {role} data directory failed: {log}")]
    Init { role: &'static str, log: String },
    #[error("the {role} server did not start: {log}")]
    Start { role: &'static str, log: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("no sandbox in {0} (run `cutover sandbox up` first)")]
    Missing(PathBuf),
    #[error("a sandbox is already running in {0}; run `cutover sandbox down` first")]
    Running(PathBuf),
    #[error("SQL on the {role} failed: {message}")]
    Sql { role: String, message: String },
    #[error("replication: {0}")]
    Replication(#[from] ReplicationError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// Settings for the servers of a sandbox.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `innodb_buffer_pool_size` in MiB, for each server.
    pub buffer_pool_mb: u64,
    /// Serve TLS with a certificate for `localhost` and `127.0.0.1` from a CA made for this
    /// sandbox (`DIR/tls/ca.pem`).
    pub tls: bool,
    /// Extra `--option=value` arguments for both servers.
    pub extra_args: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            buffer_pool_mb: 128,
            tls: false,
            extra_args: Vec::new(),
        }
    }
}

/// Certificates for a TLS sandbox: a CA, and a server certificate it signed.
pub mod tls;

mod replication;
pub use replication::ReplicationError;

/// One running server.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Server {
    pub role: String,
    pub server_id: u32,
    pub port: u16,
    pub socket: PathBuf,
    pub datadir: PathBuf,
    pub pid: u32,
}

impl Server {
    /// DSN of `root` over TCP, with an optional database.
    pub fn dsn(&self, db: Option<&str>) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.port, db.unwrap_or(""))
            .trim_end_matches('/')
            .to_string()
    }

    /// DSN of the password-protected `app` user (the password inline).
    pub fn app_dsn(&self, db: Option<&str>) -> String {
        format!(
            "mysql://app:{}@127.0.0.1:{}/{}",
            APP_PASSWORD,
            self.port,
            db.unwrap_or("")
        )
        .trim_end_matches('/')
        .to_string()
    }

    /// DSN over the unix socket.
    pub fn socket_dsn(&self) -> String {
        format!("mysql://root@localhost?socket={}", self.socket.display())
    }

    pub fn is_alive(&self) -> bool {
        pid_alive(self.pid)
    }

    /// Runs `sql` (one or more `;`-separated statements, all in one session) as `root` over
    /// the unix socket with the `mariadb` command-line client, and returns the rows of every
    /// result set, without headers. A NULL reads as the text `NULL`. For tests and the
    /// sandbox's own set-up; it stops at the first failing statement.
    pub fn sql(&self, sql: &str) -> Result<Vec<Vec<String>>, SandboxError> {
        let out = self.client(sql, false)?;
        Ok(out.lines().map(split_batch_line).collect())
    }

    /// The first row of one statement's result as column name → value (`None`: no row).
    fn row_map(&self, sql: &str) -> Result<Option<HashMap<String, String>>, SandboxError> {
        let out = self.client(sql, true)?;
        let mut lines = out.lines();
        let (Some(header), Some(row)) = (lines.next(), lines.next()) else {
            return Ok(None);
        };
        Ok(Some(
            split_batch_line(header)
                .into_iter()
                .zip(split_batch_line(row))
                .collect(),
        ))
    }

    /// Runs the `mariadb` client in batch mode; its standard output.
    fn client(&self, sql: &str, headers: bool) -> Result<String, SandboxError> {
        let client = find_binary(&["mariadb", "mysql"])?;
        let mut cmd = Command::new(client);
        cmd.arg("--no-defaults")
            .arg("--protocol=SOCKET")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root")
            .arg("--batch");
        if !headers {
            cmd.arg("--skip-column-names");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("running the mariadb client"))?;
        // The statements go in on standard input (no length limit, unlike an argument),
        // written from another thread so that a large output can never block the writer.
        let writer = child.stdin.take().map(|mut stdin| {
            let text = sql.to_string();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(text.as_bytes());
            })
        });
        let out = child
            .wait_with_output()
            .map_err(io("running the mariadb client"))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        if !out.status.success() {
            let message = String::from_utf8_lossy(&out.stderr)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            return Err(SandboxError::Sql {
                role: self.role.clone(),
                message,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Splits one line of the client's batch output into cells, undoing its escapes.
fn split_batch_line(line: &str) -> Vec<String> {
    line.split('\t').map(unescape_batch).collect()
}

fn unescape_batch(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A source and a target.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sandbox {
    pub dir: PathBuf,
    pub source: Server,
    pub target: Server,
    pub version: String,
    /// The CA that signed the servers' certificates, when the sandbox serves TLS.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

impl Sandbox {
    /// Starts a pair in `dir` that outlives this process (`cutover sandbox up`).
    pub fn up(dir: &Path, settings: &Settings) -> Result<Sandbox, SandboxError> {
        if let Ok(sb) = Sandbox::load(dir) {
            if sb.source.is_alive() || sb.target.is_alive() {
                return Err(SandboxError::Running(dir.to_path_buf()));
            }
        }
        let sb = start(dir, settings, None)?;
        sb.save()?;
        Ok(sb)
    }

    /// Starts a pair in a fresh temporary directory, stopped and removed when this process
    /// exits. For tests and the demo.
    pub fn start_owned(settings: &Settings) -> Result<Sandbox, SandboxError> {
        let base = std::env::temp_dir().join(format!(
            "cutover-sandbox-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&base).map_err(io(format!("creating {}", base.display())))?;
        let sb = start(&base, settings, Some(std::process::id()))?;
        sb.save()?;
        Ok(sb)
    }

    /// Reads `DIR/sandbox.json`.
    pub fn load(dir: &Path) -> Result<Sandbox, SandboxError> {
        let f = dir.join("sandbox.json");
        let text =
            std::fs::read_to_string(&f).map_err(|_| SandboxError::Missing(dir.to_path_buf()))?;
        serde_json::from_str(&text).map_err(|_| SandboxError::Missing(dir.to_path_buf()))
    }

    fn save(&self) -> Result<(), SandboxError> {
        let f = self.dir.join("sandbox.json");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&f, text).map_err(io(format!("writing {}", f.display())))
    }

    /// Stops both servers (SIGTERM, then SIGKILL after a grace period) and removes the
    /// directory.
    pub fn down(dir: &Path) -> Result<(), SandboxError> {
        let sb = Sandbox::load(dir)?;
        for s in [&sb.source, &sb.target] {
            stop_pid(s.pid, Duration::from_secs(30));
        }
        std::fs::remove_dir_all(dir).map_err(io(format!("removing {}", dir.display())))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

fn find_binary(names: &[&'static str]) -> Result<PathBuf, SandboxError> {
    let dirs = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for d in path.split(':').chain(dirs) {
            let p = Path::new(d).join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(SandboxError::NotInstalled(names[0]))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> Result<u16, SandboxError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let port = l.local_addr().map_err(io("finding a free port"))?.port();
    Ok(port)
}

const INIT_SQL: &str = "\
CREATE USER IF NOT EXISTS 'root'@'%';\n\
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n\
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n\
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-secret';\n\
GRANT ALL PRIVILEGES ON *.* TO 'app'@'%';\n\
CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'app-secret';\n\
GRANT ALL PRIVILEGES ON *.* TO 'app'@'127.0.0.1';\n\
CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY 'app-secret';\n\
GRANT ALL PRIVILEGES ON *.* TO 'app'@'localhost';\n";

fn start(dir: &Path, settings: &Settings, owner: Option<u32>) -> Result<Sandbox, SandboxError> {
    let mariadbd = find_binary(&["mariadbd", "mysqld"])?;
    let install = find_binary(&["mariadb-install-db", "mysql_install_db"])?;
    let dir = std::fs::canonicalize(dir)
        .or_else(|_| {
            std::fs::create_dir_all(dir)?;
            std::fs::canonicalize(dir)
        })
        .map_err(io(format!("creating {}", dir.display())))?;
    let init = dir.join("init.sql");
    std::fs::write(&init, INIT_SQL).map_err(io(format!("writing {}", init.display())))?;
    let mut settings = settings.clone();
    let mut tls_ca = None;
    if settings.tls {
        let files = tls::generate(&dir.join("tls"), "cutover sandbox CA")?;
        settings.extra_args.extend([
            format!("--ssl-ca={}", files.ca.display()),
            format!("--ssl-cert={}", files.cert.display()),
            format!("--ssl-key={}", files.key.display()),
        ]);
        tls_ca = Some(files.ca);
    }
    let settings = &settings;

    // Both data directories are initialised at once: it is most of the start-up time.
    let roles: [(&'static str, u32); 2] = [("source", 1), ("target", 2)];
    let inits: Vec<_> = roles
        .iter()
        .map(|(role, _)| {
            let datadir = dir.join(role);
            let _ = std::fs::remove_dir_all(&datadir);
            // A private temporary directory: bootstraps running at the same time (several
            // sandboxes, parallel tests) otherwise clash on temporary table files in /tmp.
            let tmp = dir.join(format!("{role}-tmp"));
            let _ = std::fs::create_dir_all(&tmp);
            let mut cmd = Command::new(&install);
            cmd.env("TMPDIR", &tmp);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", datadir.display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if is_root() {
                cmd.arg("--user=root");
            }
            (*role, cmd.spawn())
        })
        .collect();
    for (role, child) in inits {
        let out = child
            .map_err(io("running mariadb-install-db"))?
            .wait_with_output()
            .map_err(io("running mariadb-install-db"))?;
        if !out.status.success() {
            let mut log = String::from_utf8_lossy(&out.stderr).into_owned();
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            return Err(SandboxError::Init {
                role,
                log: tail(&log, 20),
            });
        }
    }

    let mut servers = Vec::new();
    for (role, server_id) in roles {
        servers.push(start_server(
            &mariadbd, &dir, role, server_id, &init, settings, owner,
        )?);
    }
    let version = Command::new(&mariadbd)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let target = servers
        .pop()
        .ok_or(SandboxError::NotInstalled("mariadbd"))?;
    let source = servers
        .pop()
        .ok_or(SandboxError::NotInstalled("mariadbd"))?;
    Ok(Sandbox {
        dir,
        source,
        target,
        version,
        tls_ca,
    })
}

fn start_server(
    mariadbd: &Path,
    dir: &Path,
    role: &'static str,
    server_id: u32,
    init: &Path,
    settings: &Settings,
    owner: Option<u32>,
) -> Result<Server, SandboxError> {
    let datadir = dir.join(role);
    let socket = datadir.join("mysqld.sock");
    let log = datadir.join("error.log");
    let mut last_log = String::new();
    // A free port can be taken by someone else between our probe and the server's bind;
    // then the server exits at once and we try another port.
    for _attempt in 0..5 {
        let port = free_port()?;
        let mut cmd = Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                datadir.join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--init-file={}", init.display()))
            .arg(format!(
                "--tmpdir={}",
                dir.join(format!("{role}-tmp")).display()
            ))
            .arg(format!("--server-id={server_id}"))
            .arg(format!("--log-bin={}", datadir.join("binlog").display()))
            .arg("--binlog-format=ROW")
            .arg("--binlog-row-image=FULL")
            .arg("--log-slave-updates")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci")
            .arg(format!(
                "--innodb-buffer-pool-size={}M",
                settings.buffer_pool_mb
            ))
            .arg("--innodb-log-file-size=64M")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--sync-binlog=0")
            .arg("--max-connections=1000")
            .arg("--skip-name-resolve")
            .arg("--max-allowed-packet=256M")
            .args(&settings.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.arg("--user=root");
        }
        // Its own process group, so a Ctrl-C at the terminal that started `sandbox up` does
        // not reach the servers.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(io("starting mariadbd"))?;
        let pid = child.id();
        if let Some(owner) = owner {
            spawn_watchdog(owner, pid, dir)?;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                last_log = std::fs::read_to_string(&log).unwrap_or_default();
                break;
            }
            if handshake_ok(&socket) {
                // Reap the child in the background so it never becomes a zombie while we live.
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                return Ok(Server {
                    role: role.to_string(),
                    server_id,
                    port,
                    socket,
                    datadir,
                    pid,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                last_log = std::fs::read_to_string(&log).unwrap_or_default();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !last_log.contains("Address already in use") {
            break;
        }
    }
    Err(SandboxError::Start {
        role,
        log: tail(&last_log, 20),
    })
}

/// Whether the server behind `socket` accepts a connection and sends its handshake. The unix
/// socket (unique to this data directory) is asked rather than the TCP port: a port found
/// free may meanwhile serve another sandbox's server, and a server binds its TCP port before
/// it creates its socket, so a handshake here means the port is ours too. The server runs
/// the init file (the users) before it listens.
fn handshake_ok(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 5];
    // Byte 4 is the protocol version (10) of a handshake; 0xff would be an error packet.
    matches!(s.read_exact(&mut buf), Ok(()) if buf[4] == 10)
}

/// A shell loop that waits for `owner` to exit, then stops the server and removes `dir`.
fn spawn_watchdog(owner: u32, pid: u32, dir: &Path) -> Result<(), SandboxError> {
    let script = format!(
        "while kill -0 {owner} 2>/dev/null; do sleep 0.5; done; \
         kill -TERM {pid} 2>/dev/null; \
         i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done; \
         kill -KILL {pid} 2>/dev/null; rm -rf '{}'",
        dir.display().to_string().replace('\'', "")
    );
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io("starting the sandbox watchdog"))?;
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

fn stop_pid(pid: u32, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    // SAFETY: sending a signal to a pid we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if pid_alive(pid) {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_cells_are_unescaped() {
        assert_eq!(
            split_batch_line("a\\tb\tc\\\\d\te\\nf\t\\0"),
            vec!["a\tb", "c\\d", "e\nf", "\0"]
        );
        assert_eq!(split_batch_line("trailing\\"), vec!["trailing\\"]);
    }
}
