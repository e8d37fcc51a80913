//! `pentaflow status`: a node's status tables, fetched from its admin API.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

/// Prints the status document of the node whose admin API listens on `admin`.
pub(crate) async fn run(
    admin: SocketAddr,
    json: bool,
    token: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let doc = pentaflow_admin::fetch_status(admin, token)
        .await
        .with_context(|| format!("cannot read status from the admin API at {admin}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", pentaflow_admin::render_table(&doc));
    }
    Ok(ExitCode::SUCCESS)
}
