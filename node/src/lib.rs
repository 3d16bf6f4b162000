//! # cairn-node: the Cairn full node daemon
//!
//! What this crate owns, one owner per resource (STYLE §4):
//! - the **chain owner thread** ([`chain_task`]): the one `ChainState` and [`mempool`],
//!   reached through a cloneable `ChainHandle` with typed queries and commands;
//! - the **store** ([`store`]): rocksdb behind `cairn-core`'s storage traits, plus snapshot
//!   reads for whole-UTXO-set scans off the chain thread;
//! - the **p2p network** ([`network`]): libp2p gossip, sync and peer management;
//! - the **JSON-RPC server** ([`rpc`]): the method table of `../shared/INTERFACE.md`;
//! - the **miner driver** ([`mining`]): templates in, found blocks out, `cairn-miner`
//!   doing the nonce search;
//! - the node's [`clock`], the datadir ([`datadir`]) and configuration ([`config`]).
//!
//! What it never does:
//! - decide consensus: every rule (validation, fork choice, difficulty) is `cairn-core`'s;
//!   the node feeds it events and performs the effects it returns;
//! - drive other nodes: `cairn testnet`, scenarios and views are `cairn-lab`'s, which only
//!   speaks the RPC contract (`cairn-rpc`);
//! - block the async runtime: validation and disk writes run on the chain thread, scans on
//!   tokio's blocking pool, nonce searches on the miner's threads;
//! - listen beyond loopback unless told: RPC binds 127.0.0.1 and p2p listens on 127.0.0.1
//!   by default.
//!
//! [`run`] is `cairn node`.

pub mod byzantine;
pub mod chain_task;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod mempool;
pub mod metrics;
pub mod mining;
pub mod network;
pub mod reindex;
pub mod rpc;
pub mod rpc_cli;
pub mod store;
pub mod strategy;

use anyhow::Context;
use cairn_rpc::NodeInfo;
use chain_task::{ChainHandle, NodeState};
use clock::SharedClock;
use config::NodeConfig;
use datadir::DataDir;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How often transactions past the mempool's expiry are dropped.
const MEMPOOL_EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// How long the network and the RPC server get to wind down at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a node until SIGINT, SIGTERM or the `stop` RPC; then shuts down cleanly: mining
/// stops, the RPC server drains, the chain store is flushed and closed, `node.json` and the
/// cookie are removed and the datadir lock is released.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    run_with_clock(config, clock::system()).await
}

/// [`run`] with the time read from `clock`.
pub async fn run_with_clock(config: NodeConfig, clock: SharedClock) -> anyhow::Result<()> {
    let datadir = DataDir::open(&config.datadir)?;
    let metrics = Arc::new(metrics::Metrics::new());
    if config.reindex {
        reindex::run(datadir.path(), &config.params, clock.now_secs())?;
    }
    let state = open_state(&config, &datadir)?.with_metrics(metrics.clone());
    let (chain, chain_thread) = chain_task::spawn(state, clock);

    let network = network::start(
        network::NetworkConfig {
            listen: config.listen.clone(),
            peers: config.peers.clone(),
            mdns: config.mdns,
            datadir: datadir.path().to_path_buf(),
            faults: config.faults,
            limits: config.limits,
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

    let pay_to = config
        .params
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
    mining.set_faults(config.faults);
    if config.faults.any() {
        tracing::warn!(modes = %config.faults.names(), "running as a Byzantine node");
    }

    let ctx = Arc::new(rpc::RpcContext {
        chain: chain.clone(),
        mining: mining.clone(),
        cookie_secret,
        shutdown: shutdown_tx,
        network: network.handle.clone(),
    });
    let server = serve_rpc(
        rpc::limits::LimitedListener::new(listener, &config.rpc_limits),
        rpc::router(ctx.clone(), config.rpc_limits.max_in_flight),
        shutdown_rx.clone(),
    );
    let expiry = spawn_mempool_expiry(chain.clone());
    let coin_flush = spawn_coin_flush(chain.clone());
    let sampler = metrics::spawn_sampler(
        metrics.clone(),
        chain.clone(),
        network.handle.clone(),
        mining.clone(),
    );
    let metrics_addr = match config.metrics {
        Some(addr) => Some(serve_metrics(addr, metrics.clone(), shutdown_rx.clone()).await?),
        None => None,
    };
    announce_ready(&datadir, rpc_addr, metrics_addr, &network, config.mine)?;

    wait_for_stop(shutdown_rx).await?;

    // Order matters: stop producing work, stop taking requests, then let the chain owner
    // drain its queue and flush the store before the lock is released.
    mining.shutdown();
    let _ = tokio::task::spawn_blocking(move || mining_thread.join()).await;
    network.handle.shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, network.task).await;
    let _ = ctx.shutdown.send(true);
    drop(ctx);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    expiry.abort();
    coin_flush.abort();
    sampler.abort();
    drop(mining);
    drop(chain);
    let _ = tokio::task::spawn_blocking(move || chain_thread.join()).await;
    datadir.remove_runtime_files();
    tracing::info!("stopped");
    Ok(())
}

/// Opens the chain store in `datadir` and loads the chain and its indexes. A damaged store
/// is one [`store::Damage`] error (naming it and `--reindex`), with no context around it.
fn open_state(config: &NodeConfig, datadir: &DataDir) -> anyhow::Result<NodeState> {
    let path = datadir.chain_path();
    reindex::check_not_interrupted(datadir.path())?;
    let store =
        store::RocksStore::open(&path).map_err(|e| match store::Damage::from_open_error(&e) {
            Some(damage) => anyhow::Error::new(damage),
            None => anyhow::Error::new(e).context(format!(
                "opening the chain store in {}",
                datadir.path().display()
            )),
        })?;
    store.check_integrity()?;
    let flushed_tip = cairn_core::store::BlockReader::tip(&store)?;
    let store = store::NodeStore::new(store, config.dbcache_bytes);
    let loading =
        |e: cairn_core::chain::ChainError| match store::Damage::from_chain_error(&e, &path) {
            Some(damage) => anyhow::Error::new(damage),
            None => anyhow::Error::new(e)
                .context(format!("loading the chain in {}", datadir.path().display())),
        };
    let chain = cairn_core::ChainState::open(config.params.clone(), store).map_err(loading)?;
    if let Some(flushed) = flushed_tip.and_then(|hash| chain.entry(&hash))
        && flushed.hash != chain.tip().hash
    {
        // The UTXO cache had not reached the disk (a crash): the blocks after the flushed
        // tip were durable and have been connected again.
        tracing::info!(
            from = flushed.height,
            to = chain.height(),
            "resumed from the last UTXO flush: connected the stored blocks after it again"
        );
    }
    let (events, _) = broadcast::channel(4096);
    let state = NodeState::new(chain, events)
        .map_err(loading)?
        .with_strategy(config.strategy);
    tracing::info!(network = %config.params.network_id, height = state.chain.height(), tip = %state.chain.tip().hash, "chain loaded");
    Ok(state)
}

/// Serves the RPC until `stop` turns true, then drains in-flight requests.
fn serve_rpc(
    listener: rpc::limits::LimitedListener,
    router: axum::Router,
    mut stop_rx: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let server =
        rpc::limits::serve_with_limits(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
    tokio::spawn(async move { server.await })
}

/// Serves `/metrics` on `addr` until `stop` turns true; returns the bound address.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<metrics::Metrics>,
    mut stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics server to {addr}"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics address")?;
    // Scrapers get the RPC server's connection bounds too: the port has no credential.
    let listener = rpc::limits::LimitedListener::new(listener, &rpc::limits::RpcLimits::default());
    let server =
        axum::serve(listener, metrics::router(metrics)).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
    tokio::spawn(async move { server.await });
    Ok(bound)
}

/// Writes `node.json` and prints the `ready` line that scripts and the lab wait for.
fn announce_ready(
    datadir: &DataDir,
    rpc_addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
    network: &network::Started,
    mining: bool,
) -> anyhow::Result<()> {
    datadir.write_node_info(&NodeInfo {
        rpc: rpc_addr.to_string(),
        p2p: network.listen_addrs.iter().map(|a| a.to_string()).collect(),
        peer_id: network.peer_id.to_string(),
        pid: std::process::id(),
        metrics: metrics_addr.map(|a| a.to_string()),
    })?;
    let p2p = network
        .listen_addrs
        .first()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "none".into());
    println!("ready rpc={rpc_addr} p2p={p2p} peer_id={}", network.peer_id);
    tracing::info!(%rpc_addr, datadir = %datadir.path().display(), mining, "ready");
    Ok(())
}

/// Drops expired mempool transactions every [`MEMPOOL_EXPIRY_INTERVAL`] until the node stops.
fn spawn_mempool_expiry(chain: ChainHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MEMPOOL_EXPIRY_INTERVAL);
        loop {
            tick.tick().await;
            if chain.expire_mempool().await.is_err() {
                break;
            }
        }
    })
}

/// Writes the UTXO cache to disk every [`chain_task::COIN_FLUSH_INTERVAL`] until the node
/// stops, so that a crash costs at most that many seconds of blocks to connect again.
fn spawn_coin_flush(chain: ChainHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(chain_task::COIN_FLUSH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            match chain.flush_coins().await {
                Ok(()) => {}
                Err(chain_task::QueryError::Stopped(_)) => break,
                Err(chain_task::QueryError::Failed(e)) => {
                    tracing::error!("flushing the UTXO cache: {e}");
                }
            }
        }
    })
}

/// Waits for SIGINT, SIGTERM or the `stop` RPC.
async fn wait_for_stop(mut stop_rx: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = stop_rx.wait_for(|stop| *stop) => tracing::info!("stop requested over RPC: shutting down"),
    }
    Ok(())
}
