//! Endpoints: where a database is and how to log in to it.
//!
//! An [`Endpoint`] is parsed from a DSN of the form
//! `mysql://user[:password]@host[:port][/db][?ssl-mode=…&ssl-ca=FILE&socket=PATH]`.
//! The password may also come from a file or an environment variable (see
//! [`PasswordSource`]). Whatever its source, the password lives only in a [`Secret`], whose
//! `Debug` and `Display` print `***`, and every rendering of an endpoint is redacted. Error
//! messages of this module never repeat the DSN text, because the DSN may hold the password.

use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

/// A password held in memory only. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The password itself, for the one place that needs it: the login handshake.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// TLS modes, named as the MySQL client names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    Disabled,
    /// TLS when the server offers it, plain otherwise (the MySQL client's default).
    #[default]
    Preferred,
    /// TLS, without checking the certificate.
    Required,
    /// TLS, the certificate must be signed by `ssl-ca`; the host name is not checked.
    VerifyCa,
    /// TLS, certificate signed by `ssl-ca` (or a public root) and issued to the host name.
    VerifyIdentity,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" => Some(SslMode::Disabled),
            "preferred" => Some(SslMode::Preferred),
            "required" => Some(SslMode::Required),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-identity" => Some(SslMode::VerifyIdentity),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyIdentity => "verify-identity",
        }
    }
}

/// Which side of a comparison an endpoint plays. It names the password flag and variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Source,
    Target,
    Baseline,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
            Role::Baseline => "baseline",
        }
    }
    /// The environment variable that may hold this role's password.
    pub fn password_env(&self) -> &'static str {
        match self {
            Role::Source => "CUTOVER_SOURCE_PASSWORD",
            Role::Target => "CUTOVER_TARGET_PASSWORD",
            Role::Baseline => "CUTOVER_BASELINE_PASSWORD",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsnError {
    #[error("the DSN is not a URL ({0}); expected mysql://user[:password]@host[:port][/db]")]
    NotUrl(String),
    #[error("unsupported DSN scheme `{0}`: cutover speaks the MySQL protocol, use mysql://")]
    Scheme(String),
    #[error("the DSN has no user name; expected mysql://user@host")]
    NoUser,
    #[error("the DSN has no host and no socket; expected mysql://user@host or ?socket=PATH")]
    NoHost,
    #[error("the DSN's {0} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    // The three below name no DSN text: whatever follows the host may be the tail of a
    // password whose `?`, `/` or `@` was not percent-encoded.
    #[error("the DSN's database path has more than one segment (a `/` in a password must be percent-encoded as %2F)")]
    Path,
    #[error("the DSN's ssl-mode is unknown; expected disabled, preferred, required, verify-ca or verify-identity")]
    SslMode,
    #[error("the DSN has an unknown option; known options are ssl-mode, ssl-ca and socket (a `?` in a password must be percent-encoded as %3F)")]
    Option,
    #[error("ssl-mode={0} needs ssl-ca=FILE")]
    NeedsCa(&'static str),
    #[error("the DSN's user name or password holds a `/`, `?` or `#`, which end that part of a URL: percent-encode them (%2F, %3F, %23), or give the password with --source-password-file/--target-password-file or the environment")]
    UserInfo,
}

/// A database server to talk to, with credentials. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub user: String,
    pub password: Option<Secret>,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub ssl_mode: SslMode,
    pub ssl_ca: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

impl Endpoint {
    /// Parses a DSN. Never panics; the error never contains the DSN text.
    pub fn parse(dsn: &str) -> Result<Endpoint, DsnError> {
        let dsn = dsn.trim();
        let url = Url::parse(dsn).map_err(|e| DsnError::NotUrl(e.to_string()))?;
        match url.scheme() {
            "mysql" | "mariadb" | "tidb" => {}
            // Without `://` the "scheme" may be a user name followed by a password.
            other if dsn.contains("://") => return Err(DsnError::Scheme(other.to_string())),
            _ => {
                return Err(DsnError::NotUrl(
                    "it does not start with mysql://".to_string(),
                ))
            }
        }
        // Every error below that repeats part of the DSN (a path, an option) repeats text
        // after the user name and password, which the URL holds only when its authority had
        // them. Without a user, that text may be a password cut short by a `/`, `?` or `#`
        // (`mysql://root:12?Secr3t@host`), and so may text after the host that holds an `@`
        // (`mysql://root:@x?Secr3t@host`, the password's own `@` taken as the end of it):
        // nothing is echoed.
        let after_host = [Some(url.path()), url.query(), url.fragment()];
        if url.username().is_empty() || after_host.iter().flatten().any(|p| p.contains('@')) {
            return Err(if dsn.contains('@') {
                DsnError::UserInfo
            } else {
                DsnError::NoUser
            });
        }
        let user = decode(url.username(), "user name")?;
        let password = match url.password() {
            Some(p) => Some(Secret::new(decode(p, "password")?)),
            None => None,
        };
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .unwrap_or_default();
        let port = url.port().unwrap_or(3306);
        let path = url.path().trim_start_matches('/');
        let database = if path.is_empty() {
            None
        } else if path.contains('/') {
            return Err(DsnError::Path);
        } else {
            Some(decode(path, "database name")?)
        };
        let mut ssl_mode = SslMode::default();
        let mut ssl_ca = None;
        let mut socket = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "ssl-mode" | "sslmode" | "ssl_mode" => {
                    ssl_mode = SslMode::parse(&v).ok_or(DsnError::SslMode)?
                }
                "ssl-ca" | "sslca" | "ssl_ca" => ssl_ca = Some(PathBuf::from(v.as_ref())),
                "socket" => socket = Some(PathBuf::from(v.as_ref())),
                _ => return Err(DsnError::Option),
            }
        }
        if host.is_empty() && socket.is_none() {
            return Err(DsnError::NoHost);
        }
        if ssl_mode == SslMode::VerifyCa && ssl_ca.is_none() {
            return Err(DsnError::NeedsCa("verify-ca"));
        }
        Ok(Endpoint {
            user,
            password,
            host: if host.is_empty() {
                "localhost".to_string()
            } else {
                host
            },
            port,
            database,
            ssl_mode,
            ssl_ca,
            socket,
        })
    }

    /// Fills in the password from the first source that has one, in this order: the password
    /// file (an explicit flag), the DSN itself, the role's environment variable.
    pub fn resolve_password(&mut self, source: &PasswordSource) -> Result<(), PasswordError> {
        if let Some(file) = &source.file {
            self.password = Some(read_password_file(file)?);
            return Ok(());
        }
        if self.password.is_some() {
            return Ok(());
        }
        if let Some(v) = &source.env_value {
            self.password = Some(Secret::new(v.clone()));
        }
        Ok(())
    }

    /// The DSN with the password replaced by `***`. This is the only way an endpoint prints.
    pub fn redacted(&self) -> String {
        let mut s = format!("mysql://{}", self.user);
        if self.password.is_some() {
            s.push_str(":***");
        }
        s.push('@');
        if self.host.contains(':') {
            s.push_str(&format!("[{}]", self.host));
        } else {
            s.push_str(&self.host);
        }
        s.push_str(&format!(":{}", self.port));
        if let Some(db) = &self.database {
            s.push('/');
            s.push_str(db);
        }
        let mut opts = Vec::new();
        if self.ssl_mode != SslMode::default() {
            opts.push(format!("ssl-mode={}", self.ssl_mode.as_str()));
        }
        if let Some(ca) = &self.ssl_ca {
            opts.push(format!("ssl-ca={}", ca.display()));
        }
        if let Some(sock) = &self.socket {
            opts.push(format!("socket={}", sock.display()));
        }
        if !opts.is_empty() {
            s.push('?');
            s.push_str(&opts.join("&"));
        }
        s
    }

    /// A short name for humans: `host:port` or the socket path.
    pub fn address(&self) -> String {
        match &self.socket {
            Some(s) => s.display().to_string(),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.redacted())
    }
}

/// Where else a password may come from, besides the DSN.
#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
    /// The value of the role's environment variable, read by the caller (so tests and the
    /// binary decide what the environment is).
    pub env_value: Option<String>,
}

impl PasswordSource {
    /// The password file flag (if any) and the role's variable from the process environment.
    pub fn from_env(role: Role, file: Option<PathBuf>) -> PasswordSource {
        PasswordSource {
            file,
            env_value: std::env::var(role.password_env()).ok(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("cannot read password file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file {0} is not UTF-8")]
    NotUtf8(PathBuf),
}

fn read_password_file(path: &Path) -> Result<Secret, PasswordError> {
    let bytes = std::fs::read(path).map_err(|source| PasswordError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| PasswordError::NotUtf8(path.to_path_buf()))?;
    // A trailing newline is how editors and `echo` end files; it is never part of a password.
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(Secret::new(trimmed))
}

fn decode(s: &str, what: &'static str) -> Result<String, DsnError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| DsnError::Encoding(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form() {
        let e = Endpoint::parse(
            "mysql://app:p%40ss@db.example:3307/shop?ssl-mode=verify-ca&ssl-ca=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(e.user, "app");
        assert_eq!(e.password.as_ref().unwrap().expose(), "p@ss");
        assert_eq!(e.host, "db.example");
        assert_eq!(e.port, 3307);
        assert_eq!(e.database.as_deref(), Some("shop"));
        assert_eq!(e.ssl_mode, SslMode::VerifyCa);
        assert_eq!(e.ssl_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert!(!e.to_string().contains("p@ss"));
        assert!(!format!("{e:?}").contains("p@ss"));
    }

    #[test]
    fn minimal_form_and_defaults() {
        let e = Endpoint::parse("mysql://root@127.0.0.1").unwrap();
        assert_eq!(e.port, 3306);
        assert_eq!(e.password, None);
        assert_eq!(e.ssl_mode, SslMode::Preferred);
        assert_eq!(e.database, None);
    }

    #[test]
    fn socket_form() {
        let e = Endpoint::parse("mysql://root@localhost/db?socket=/tmp/m.sock").unwrap();
        assert_eq!(e.socket.as_deref(), Some(Path::new("/tmp/m.sock")));
        assert_eq!(e.address(), "/tmp/m.sock");
    }

    #[test]
    fn ipv6() {
        let e = Endpoint::parse("mysql://u:pw@[::1]:4000").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.redacted(), "mysql://u:***@[::1]:4000");
    }

    #[test]
    fn errors_never_echo_the_dsn() {
        for dsn in [
            "postgres://u:hunter2@h/db",
            "mysql://:hunter2@h",
            "mysql://u:hunter2@h?ssl-mode=sometimes",
            "mysql://u:hunter2@h?colour=blue",
            "mysql://u:hunter2@h/a/b",
            "mysql://u:hunter2@h?ssl-mode=verify-ca",
            "hunter2",
            "mysql://root:1234?hunter2@host:1",
            "mysql://root:1234/x/hunter2@host:1",
            "mysql://root:12#hunter2@host",
            "mysql://root:1234?hunter2",
            "root:hunter2@host",
            "hunter2:x@host",
        ] {
            let err = Endpoint::parse(dsn).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{dsn}: {err}");
        }
    }

    #[test]
    fn password_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let mut e = Endpoint::parse("mysql://u:from-dsn@h").unwrap();
        e.resolve_password(&PasswordSource {
            file: None,
            env_value: Some("from-env".into()),
        })
        .unwrap();
        assert_eq!(e.password.as_ref().unwrap().expose(), "from-dsn");
        e.resolve_password(&PasswordSource {
            file: Some(f.clone()),
            env_value: None,
        })
        .unwrap();
        assert_eq!(e.password.as_ref().unwrap().expose(), "from-file");
        let mut e = Endpoint::parse("mysql://u@h").unwrap();
        e.resolve_password(&PasswordSource {
            file: None,
            env_value: Some("from-env".into()),
        })
        .unwrap();
        assert_eq!(e.password.as_ref().unwrap().expose(), "from-env");
        let err = e
            .resolve_password(&PasswordSource {
                file: Some(dir.path().join("missing")),
                env_value: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("cannot read password file"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Endpoint::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_dsn_like(user in "[a-z%@:]{0,8}", pw in "PW[A-Z]{4}", host in "[a-z0-9.:\\[\\]]{0,12}", rest in "[/?&=a-z0-9%-]{0,30}") {
            let dsn = format!("mysql://{user}:{pw}@{host}{rest}");
            if let Err(e) = Endpoint::parse(&dsn) {
                proptest::prop_assert!(!e.to_string().contains(&pw));
            }
        }

        /// A password holding any of the characters that end a URL's user part, unencoded,
        /// never appears in an error, nor does any piece of it around them.
        #[test]
        fn no_error_echoes_a_password(user in "[a-z]{0,6}", before in "[a-z0-9?/#&=@:%;]{0,6}", after in "[a-z0-9?/#&=@:%;]{0,6}", host in "[a-z0-9.:\\[\\]]{0,12}", rest in "[/?&=a-z0-9%@#-]{0,20}") {
            const MARKER: &str = "Secr3tPW";
            let pw = format!("{before}{MARKER}{after}");
            for dsn in [
                format!("mysql://{user}:{pw}@{host}{rest}"),
                format!("mysql://{user}:{pw}"),
                format!("{user}:{pw}@{host}{rest}"),
                format!("mysql://{pw}@{host}{rest}"),
            ] {
                if let Err(e) = Endpoint::parse(&dsn) {
                    let text = e.to_string();
                    proptest::prop_assert!(!text.contains(MARKER), "{dsn}: {text}");
                    for piece in [&before, &after] {
                        let piece: String = piece.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
                        if piece.len() >= 3 {
                            proptest::prop_assert!(!text.contains(&format!("`{piece}")), "{dsn}: {text}");
                        }
                    }
                }
            }
        }

        #[test]
        fn redacted_round_trips(user in "[a-z]{1,8}", pw in "[ -~]{1,16}", host in "[a-z]{1,8}", port in 1u16.., db in proptest::option::of("[a-z_]{1,8}")) {
            let enc: String = url::form_urlencoded::byte_serialize(pw.as_bytes()).collect::<String>().replace('+', "%20");
            let dsn = format!("mysql://{user}:{enc}@{host}:{port}{}", db.as_ref().map(|d| format!("/{d}")).unwrap_or_default());
            let e = Endpoint::parse(&dsn).unwrap();
            proptest::prop_assert_eq!(e.password.as_ref().unwrap().expose(), pw.as_str());
            let shown = e.redacted();
            let again = Endpoint::parse(&shown).unwrap();
            proptest::prop_assert_eq!(again.user, e.user);
            proptest::prop_assert_eq!(again.host, e.host);
            proptest::prop_assert_eq!(again.port, e.port);
            proptest::prop_assert_eq!(again.database, e.database);
        }
    }
}
