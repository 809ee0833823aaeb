//! `cutover demo`: the whole story on a local sandbox.

use anyhow::Result;

use crate::cli::DemoArgs;

pub async fn run(_args: DemoArgs) -> Result<u8> {
    Ok(0)
}
