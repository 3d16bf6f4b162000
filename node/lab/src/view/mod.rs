//! `cairn testnet view`: watch forks resolve, live, in the browser or the terminal.
//!
//! Every node of a testnet is followed from outside, over its RPC contract ([`source`],
//! [`follow`]: `getblocktree` and `GET /events`, or `getchaintips` + `getblock` and polling
//! on nodes without them); their trees are merged into one ([`merge`], [`layout`]) with
//! who is on what, double spends are found across mempools and blocks ([`conflicts`]), and
//! the whole is served as JSON, server-sent events and a self-contained page ([`server`]),
//! or printed once as text ([`text`]). Finality odds come from [`crate::theory`].
//!
//! Module map: `source` (what a node knows, the RPC seam), `sse` (the event-stream client),
//! `follow` (one task per node), `node_state` (what is held of a node, pure), `hub` (events
//! and reorgs), `model` (states, caches, queries), `merge` / `layout` / `conflicts` / `text`
//! (pure), `server` (routes, page assets).

pub mod conflicts;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod fake_node;
pub mod follow;
pub mod hub;
pub mod layout;
pub mod merge;
pub mod model;
pub mod node_state;
pub mod server;
pub mod source;
pub mod sse;
pub mod text;

use anyhow::{Context, bail};
use cairn_rpc::Devnet;
use clap::Args;
use source::{NodeSource, RpcSource};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// How long the view waits for the first reading of every node before it serves anyway.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Arguments of `cairn testnet view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Where to serve the page [default: 127.0.0.1 with a free port]
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<SocketAddr>,
    /// Print the last heights of the merged tree as text and exit
    #[arg(long)]
    pub text: bool,
    /// With --text: how many heights to print
    #[arg(long, value_name = "N", default_value_t = 30, requires = "text")]
    pub last: u32,
}

/// The sources of every node of the testnet in `dir`.
pub fn sources(dir: &Path) -> anyhow::Result<Vec<Arc<dyn NodeSource>>> {
    let devnet = Devnet::read(dir)?;
    if devnet.nodes.is_empty() {
        bail!("the testnet in {} has no nodes", dir.display());
    }
    Ok(devnet
        .nodes
        .iter()
        .map(|n| Arc::new(RpcSource::for_devnet_node(n)) as Arc<dyn NodeSource>)
        .collect())
}

/// Runs `cairn testnet view` on the testnet in `dir`.
pub fn run(dir: &Path, args: ViewArgs) -> anyhow::Result<()> {
    let sources = sources(dir)?;
    if args.text {
        if args.last == 0 {
            bail!("--last must be at least 1");
        }
        print!("{}", snapshot_text(&sources, args.last)?);
        return Ok(());
    }
    let addr = args
        .addr
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(sources, addr))
}

/// The text drawing of the last `last` heights, read once from every node.
pub fn snapshot_text(sources: &[Arc<dyn NodeSource>], last: u32) -> anyhow::Result<String> {
    let summaries: Vec<_> = sources.iter().map(|s| s.summary()).collect();
    let Some(top) = summaries.iter().flatten().map(|s| s.height).max() else {
        let reasons: Vec<String> = summaries
            .iter()
            .filter_map(|s| s.as_ref().err().map(ToString::to_string))
            .collect();
        bail!("no node of the testnet answers: {}", reasons.join("; "));
    };
    let from = top.saturating_sub(last - 1);
    let snapshots: Vec<merge::NodeSnapshot> = sources
        .iter()
        .zip(&summaries)
        .map(|(source, summary)| {
            let tree = summary.as_ref().ok().and_then(|_| source.tree(from).ok());
            merge::NodeSnapshot {
                name: source.name().to_owned(),
                up: tree.is_some(),
                tip: tree.as_ref().map(|t| t.tip.clone()),
                height: tree.as_ref().map(|t| t.height),
                blocks: tree.map(|t| t.blocks).unwrap_or_default(),
                ..merge::NodeSnapshot::default()
            }
        })
        .collect();
    Ok(text::render(&merge::merge(&snapshots, from)))
}

/// Follows the nodes and serves the view on `addr` until SIGINT or SIGTERM.
pub async fn serve(sources: Vec<Arc<dyn NodeSource>>, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the view to {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let model = model::Model::new(sources);
    model.spawn_followers();
    // Announce the URL once every node has been read (bounded), so that the first answer
    // of /api/tree already holds every node's tip.
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while !model.ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let app = server::router(model);
    println!("view http://{bound}/");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Open event streams never end by themselves, so a signal ends the server outright
    // rather than waiting for them.
    tokio::select! {
        served = axum::serve(listener, app) => served.context("serving the view")?,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
