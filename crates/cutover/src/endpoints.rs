//! Turning flags and config into an [`Endpoint`] with its password.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use cutover_core::config::EndpointConfig;
use cutover_core::{Endpoint, PasswordSource, Role};

/// The endpoint of `role`: the flag's DSN, else the config's. The password comes from the
/// flag's file, else the config's file, else the DSN, else the role's environment variable.
pub fn resolve(
    role: Role,
    flag: Option<&str>,
    cfg: Option<&EndpointConfig>,
    password_file: Option<PathBuf>,
) -> Result<Endpoint> {
    let dsn = flag
        .map(str::to_string)
        .or_else(|| cfg.map(|c| c.dsn.clone()))
        .ok_or_else(|| {
            anyhow!("no {role} given: pass --{role} DSN or set [{role}] dsn in cutover.toml")
        })?;
    let mut e = Endpoint::parse(&dsn).map_err(|err| anyhow!("--{role}: {err}"))?;
    let file = password_file.or_else(|| cfg.and_then(|c| c.password_file.clone()));
    e.resolve_password(&PasswordSource::from_env(role, file))?;
    Ok(e)
}

/// The tables a command covers: `--tables` patterns, else the config's `[filter] tables`;
/// and the config's `[filter] exclude`. Shared by `diff`, `check` and `verify`.
pub fn table_filter(
    flag_tables: &[String],
    cfg: &cutover_core::config::Config,
) -> anyhow::Result<(
    Vec<cutover_core::config::Pattern>,
    Vec<cutover_core::config::Pattern>,
)> {
    use cutover_core::config::Pattern;
    let parse = |v: &[String], what: &str| -> anyhow::Result<Vec<Pattern>> {
        v.iter()
            .map(|p| Pattern::parse(p).map_err(|e| anyhow::anyhow!("{what}: {e}")))
            .collect()
    };
    let tables = if flag_tables.is_empty() {
        parse(&cfg.filter.tables, "--tables")?
    } else {
        parse(flag_tables, "--tables")?
    };
    Ok((tables, parse(&cfg.filter.exclude, "[filter] exclude")?))
}

/// `db.table` / `db.*` patterns from a flag's values.
pub fn patterns(values: &[String], flag: &str) -> Result<Vec<cutover_core::config::Pattern>> {
    values
        .iter()
        .map(|p| cutover_core::config::Pattern::parse(p).map_err(|e| anyhow!("{flag}: {e}")))
        .collect()
}
