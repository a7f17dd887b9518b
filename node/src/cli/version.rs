//! `covey version`.

use clap::Args;
use hyper::Method;

use super::output::{self, Format};
use super::Client;

#[derive(Args)]
pub struct VersionArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(args: VersionArgs, client: &Client) -> anyhow::Result<()> {
    let server: serde_json::Value = client.json(Method::GET, "/version").await?;
    if args.format == Format::Json {
        print!(
            "{}",
            output::json(
                &serde_json::json!({ "Client": { "Version": crate::VERSION }, "Server": server })
            )?
        );
        return Ok(());
    }
    let s = |k: &str| {
        server
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    println!("Client:\n Version:       {}\n\nServer: covey\n Version:       {}\n API version:   {} (minimum version {})\n OS/Arch:       {}/{}\n Kernel:        {}",
        crate::VERSION, s("Version"), s("ApiVersion"), s("MinAPIVersion"), s("Os"), s("Arch"), s("KernelVersion"));
    Ok(())
}
