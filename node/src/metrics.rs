//! Prometheus metrics: `cairn node --metrics 127.0.0.1:PORT` serves `GET /metrics` in the
//! OpenMetrics text format (which Prometheus scrapes natively); every name starts with
//! `cairn_`.
//!
//! One [`Metrics`] exists per node whether or not it is served, so recording is never a
//! branch on a hot path: the chain owner records imports and tip changes as they happen
//! ([`Metrics::block_connected`], [`Metrics::tip_changed`], …); what is cheaper to read than
//! to track (mempool, peers, bans, hash rate, stale blocks, the UTXO cache) is sampled once a
//! second ([`spawn_sampler`]) from the handles every other part of the node uses.

use crate::chain_task::ChainHandle;
use crate::mining::MiningHandle;
use crate::network::NetworkHandle;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The node's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// Height of the active tip.
    pub height: Gauge,
    /// Moves of the active tip.
    pub tip_changes: Counter,
    /// Tip moves that disconnected at least one block.
    pub reorgs: Counter,
    /// Blocks disconnected per reorganisation.
    pub reorg_depth: Histogram,
    /// Blocks with a body that are on no active chain (side branches).
    pub stale_blocks: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Banned peers.
    pub bans: Gauge,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge,
    /// Bytes of the transactions in the mempool.
    pub mempool_bytes: Gauge,
    /// This node's hash rate, hashes per second averaged since start.
    pub hashrate: Gauge<f64, AtomicU64>,
    /// Blocks received from peers (gossip and sync), valid or not.
    pub blocks_received: Counter,
    /// Transactions received from peers, valid or not.
    pub txs_received: Counter,
    /// Seconds the chain owner spent importing one block (checks, connection, store).
    pub block_validation: Histogram,
    /// Seconds from when this node first knew a block (its header or body) to when it was
    /// connected to the active chain.
    pub block_announce_to_connect: Histogram,
    /// Memory the UTXO cache (`--dbcache`) takes.
    pub utxo_cache_bytes: Gauge,
    /// Coin changes the UTXO cache holds since its last flush.
    pub utxo_cache_coins: Gauge,
    /// Flushes of the UTXO cache to the chain store.
    pub utxo_cache_flushes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let m = Metrics {
            height: Gauge::default(),
            tip_changes: Counter::default(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 50.0, 100.0]),
            stale_blocks: Gauge::default(),
            peers: Gauge::default(),
            bans: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            hashrate: Gauge::default(),
            blocks_received: Counter::default(),
            txs_received: Counter::default(),
            // 100 µs .. ~26 s
            block_validation: Histogram::new(exponential_buckets(0.0001, 2.0, 19)),
            // 1 ms .. ~65 s
            block_announce_to_connect: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            utxo_cache_bytes: Gauge::default(),
            utxo_cache_coins: Gauge::default(),
            utxo_cache_flushes: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("height", "Height of the active tip", m.height.clone());
        r.register(
            "tip_changes",
            "Moves of the active tip",
            m.tip_changes.clone(),
        );
        r.register(
            "reorgs",
            "Tip moves that disconnected blocks",
            m.reorgs.clone(),
        );
        r.register(
            "reorg_depth",
            "Blocks disconnected per reorganisation",
            m.reorg_depth.clone(),
        );
        r.register(
            "stale_blocks",
            "Blocks with a body on no active chain",
            m.stale_blocks.clone(),
        );
        r.register("peers", "Connected peers", m.peers.clone());
        r.register("bans", "Banned peers", m.bans.clone());
        r.register(
            "mempool_transactions",
            "Transactions in the mempool",
            m.mempool_txs.clone(),
        );
        r.register_with_unit(
            "mempool_size",
            "Bytes of the transactions in the mempool",
            Unit::Bytes,
            m.mempool_bytes.clone(),
        );
        r.register(
            "hashrate",
            "Local hashes per second, averaged since start",
            m.hashrate.clone(),
        );
        r.register(
            "blocks_received",
            "Blocks received from peers",
            m.blocks_received.clone(),
        );
        r.register(
            "transactions_received",
            "Transactions received from peers",
            m.txs_received.clone(),
        );
        r.register_with_unit(
            "block_validation",
            "Time to import one block",
            Unit::Seconds,
            m.block_validation.clone(),
        );
        r.register_with_unit(
            "block_announce_to_connect",
            "Time from first knowing a block to connecting it",
            Unit::Seconds,
            m.block_announce_to_connect.clone(),
        );
        r.register_with_unit(
            "utxo_cache_size",
            "Memory the UTXO cache takes",
            Unit::Bytes,
            m.utxo_cache_bytes.clone(),
        );
        r.register(
            "utxo_cache_coins",
            "Coin changes the UTXO cache holds since its last flush",
            m.utxo_cache_coins.clone(),
        );
        r.register(
            "utxo_cache_flushes",
            "Flushes of the UTXO cache to the chain store",
            m.utxo_cache_flushes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records a move of the active tip.
    pub fn tip_changed(&self, height: u32, reorg_depth: usize) {
        self.height.set(i64::from(height));
        self.tip_changes.inc();
        if reorg_depth > 0 {
            self.reorgs.inc();
            self.reorg_depth.observe(reorg_depth as f64);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// How often the sampled metrics are refreshed.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Refreshes the sampled metrics every [`SAMPLE_INTERVAL`] until the chain owner stops.
pub fn spawn_sampler(
    metrics: Arc<Metrics>,
    chain: ChainHandle,
    network: NetworkHandle,
    mining: MiningHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        loop {
            tick.tick().await;
            let Ok(sample) = chain.sample().await else {
                break;
            };
            metrics.stale_blocks.set(sample.stale_blocks as i64);
            metrics.mempool_txs.set(sample.mempool_txs as i64);
            metrics.mempool_bytes.set(sample.mempool_bytes as i64);
            metrics.utxo_cache_bytes.set(sample.utxo_cache_bytes as i64);
            metrics.utxo_cache_coins.set(sample.utxo_cache_coins as i64);
            let flushed = sample
                .utxo_cache_flushes
                .saturating_sub(metrics.utxo_cache_flushes.get());
            metrics.utxo_cache_flushes.inc_by(flushed);
            if let Ok(peers) = network.peer_info().await {
                metrics.peers.set(peers.len() as i64);
            }
            if let Ok(bans) = network.list_banned().await {
                metrics.bans.set(bans.len() as i64);
            }
            metrics.hashrate.set(mining.info().hashps);
        }
    })
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// The `/metrics` router.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample named exactly `name` (no labels) in a text exposition.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok())?
        })
    }

    #[test]
    fn every_name_is_prefixed_and_values_are_what_was_recorded() {
        let m = Metrics::new();
        m.tip_changed(7, 0);
        m.tip_changed(9, 3);
        m.mempool_txs.set(4);
        m.block_validation.observe(0.002);
        let text = m.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("cairn_"), "{line}");
        }
        assert_eq!(sample(&text, "cairn_height"), Some(9.0));
        assert_eq!(sample(&text, "cairn_tip_changes_total"), Some(2.0));
        assert_eq!(sample(&text, "cairn_reorgs_total"), Some(1.0));
        assert_eq!(sample(&text, "cairn_reorg_depth_sum"), Some(3.0));
        assert_eq!(sample(&text, "cairn_mempool_transactions"), Some(4.0));
        assert_eq!(
            sample(&text, "cairn_block_validation_seconds_count"),
            Some(1.0)
        );
    }
}
