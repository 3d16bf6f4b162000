//! # cairn-node: the Cairn full node
//!
//! Storage on rocksdb ([`store`]), the [`mempool`], the JSON-RPC server ([`rpc`]), mining
//! integration ([`mining`]) and the one owner of chain state and mempool ([`chain_task`]),
//! around the pure consensus rules of `cairn-core`. [`run`] is `cairn node`.

pub mod chain_task;
pub mod config;
pub mod datadir;
pub mod mempool;
pub mod mining;
pub mod network;
pub mod rpc;
pub mod rpc_cli;
pub mod store;

use anyhow::Context;
use cairn_rpc::NodeInfo;
use chain_task::{NodeState, unix_now};
use config::NodeConfig;
use datadir::DataDir;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Runs a node until SIGINT, SIGTERM or the `stop` RPC; then shuts down cleanly: mining
/// stops, the RPC server drains, the chain store is flushed and closed, `node.json` and the
/// cookie are removed and the datadir lock is released.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let datadir = DataDir::open(&config.datadir)?;
    let params = config.params.clone();
    let store = store::RocksStore::open(&datadir.chain_path())
        .with_context(|| format!("opening the chain store in {}", datadir.path().display()))?;
    let chain = cairn_core::ChainState::open(params.clone(), store)
        .with_context(|| format!("loading the chain in {}", datadir.path().display()))?;
    let (events, _) = broadcast::channel(4096);
    let state = NodeState::new(chain, events).context("indexing the active chain")?;
    tracing::info!(network = %params.network_id, height = state.chain.height(), tip = %state.chain.tip().hash, "chain loaded");
    let (chain, chain_thread) = chain_task::spawn(state);

    let network = network::start(
        network::NetworkConfig {
            listen: config.listen.clone(),
            peers: config.peers.clone(),
            mdns: config.mdns,
            datadir: datadir.path().to_path_buf(),
        },
        chain.clone(),
    )
    .await
    .context("starting the p2p network")?;

    let listener = tokio::net::TcpListener::bind(config.rpc_addr)
        .await
        .with_context(|| format!("binding the RPC server to {}", config.rpc_addr))?;
    let rpc_addr = listener.local_addr().context("reading the RPC address")?;
    let cookie_secret = datadir.write_cookie()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let pay_to = params
        .parse_address(&config.miner_address)
        .context("--miner-address")?;
    let (mining, mining_thread) = mining::MiningHandle::start(
        chain.clone(),
        pay_to,
        config.mine,
        config.threads,
        config.block_time,
        config.hashrate,
    );

    let ctx = Arc::new(rpc::RpcContext {
        chain: chain.clone(),
        mining: mining.clone(),
        cookie_secret,
        shutdown: shutdown_tx,
        network: network.handle.clone(),
    });
    let mut stop_rx = shutdown_rx.clone();
    let server =
        axum::serve(listener, rpc::router(ctx.clone())).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
    let server = tokio::spawn(async move { server.await });

    let expiry_chain = chain.clone();
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if expiry_chain
                .call(|s| s.mempool.expire(unix_now()))
                .await
                .is_err()
            {
                break;
            }
        }
    });

    datadir.write_node_info(&NodeInfo {
        rpc: rpc_addr.to_string(),
        p2p: network.listen_addrs.iter().map(|a| a.to_string()).collect(),
        peer_id: network.peer_id.to_string(),
        pid: std::process::id(),
        metrics: None,
    })?;
    let p2p = network
        .listen_addrs
        .first()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "none".into());
    println!("ready rpc={rpc_addr} p2p={p2p} peer_id={}", network.peer_id);
    tracing::info!(%rpc_addr, datadir = %datadir.path().display(), mining = config.mine, "ready");

    let mut stop_rx = shutdown_rx.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = stop_rx.wait_for(|stop| *stop) => tracing::info!("stop requested over RPC: shutting down"),
    }

    // Order matters: stop producing work, stop taking requests, then let the chain owner
    // drain its queue and flush the store before the lock is released.
    mining.shutdown();
    let _ = tokio::task::spawn_blocking(move || mining_thread.join()).await;
    network.handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), network.task).await;
    let _ = ctx.shutdown.send(true);
    drop(ctx);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    expiry.abort();
    drop(mining);
    drop(chain);
    let _ = tokio::task::spawn_blocking(move || chain_thread.join()).await;
    datadir.remove_runtime_files();
    tracing::info!("stopped");
    Ok(())
}
