//! Mining integration: continuous or interval mining on a thread of its own, `generate`,
//! and restarting the search the moment the tip or the template changes.
//!
//! The nonce search itself is `cairn-miner`; this module only feeds it templates from the
//! chain owner and hands found blocks back. Every search runs under a [`CancelToken`]
//! registered here, and a listener cancels all of them on a new tip (the work would be
//! stale) or on new mempool transactions (a better template exists).
//!
//! Continuous and interval mining follow one [`Throttle`], the node's hash-rate cap
//! (`--hashrate`, `sethashrate`): a share of a testnet's hash power is a setting. `generate`
//! ignores it, since it exists to mine blocks now.

use crate::byzantine::{self, Faults};
use crate::chain_task::{ChainHandle, NodeEvent, QueryError};
use cairn_core::{BlockHash, ImportOutcome, PubkeyHash, Target};
use cairn_miner::{CancelToken, Kernel, Miner, MinerConfig, Throttle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why mining failed.
#[derive(Debug, thiserror::Error)]
pub enum MiningError {
    /// The node is stopping.
    #[error("the node is shutting down")]
    Stopped,
    /// The miner failed.
    #[error("miner: {0}")]
    Miner(String),
    /// A block we mined was rejected (a bug: templates come from our own chain state).
    #[error("mined block {hash} was rejected: {reason}")]
    Rejected {
        /// Its hash.
        hash: BlockHash,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    mining: bool,
    threads: usize,
    block_time: Option<u64>,
}

/// What `getmininginfo` reports about the local miner.
#[derive(Debug, Clone, Copy)]
pub struct LocalMiningInfo {
    /// Continuous/interval mining on.
    pub mining: bool,
    /// Threads.
    pub threads: usize,
    /// Local hashes per second, averaged since the mining settings last changed (start,
    /// `setmining`, `sethashrate`), so it settles on a new cap within seconds.
    pub hashps: f64,
    /// The hash-rate cap in hashes per second, `None` when uncapped.
    pub hashrate_limit: Option<u64>,
    /// The SHA-256d kernel in use.
    pub kernel: &'static str,
}

struct Shared {
    chain: ChainHandle,
    pay_to: PubkeyHash,
    settings: Mutex<Settings>,
    wake: Condvar,
    searches: Mutex<Vec<CancelToken>>,
    shutdown: AtomicBool,
    /// Coinbase tag of the next search. It starts at a random value: nodes paying the same
    /// address (a testnet's default) would otherwise build identical templates in the same
    /// second and sweep the same nonces, so N capped nodes would find blocks no faster than one.
    extranonce: AtomicU64,
    /// The cap of continuous and interval mining; it also counts their hashes, live.
    throttle: Throttle,
    /// Hashes of finished `generate` searches.
    generated_hashes: AtomicU64,
    /// Since when, and from which hash count, `hashps` averages.
    epoch: Mutex<(Instant, u64)>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    faults: Mutex<Faults>,
}

/// Cloneable handle to the miner.
#[derive(Clone)]
pub struct MiningHandle {
    shared: Arc<Shared>,
}

impl MiningHandle {
    /// Starts the mining thread (idle unless `mining`) and the event listener.
    pub fn start(
        chain: ChainHandle,
        pay_to: PubkeyHash,
        mining: bool,
        threads: usize,
        block_time: Option<u64>,
        hashrate: Option<u64>,
    ) -> (MiningHandle, std::thread::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            chain: chain.clone(),
            pay_to,
            settings: Mutex::new(Settings {
                mining,
                threads,
                block_time,
            }),
            wake: Condvar::new(),
            searches: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            extranonce: AtomicU64::new(random_tag()),
            throttle: Throttle::new(hashrate),
            generated_hashes: AtomicU64::new(0),
            epoch: Mutex::new((Instant::now(), 0)),
            listener: Mutex::new(None),
            faults: Mutex::new(Faults::default()),
        });
        let handle = MiningHandle {
            shared: shared.clone(),
        };
        let mut events = chain.subscribe();
        let listener = handle.clone();
        let task = tokio::spawn(async move {
            let mut last_tx_restart = Instant::now();
            loop {
                match events.recv().await {
                    Ok(NodeEvent::TipChanged { .. }) => listener.cancel_searches(),
                    Ok(NodeEvent::TxAccepted { .. })
                        if last_tx_restart.elapsed() > Duration::from_millis(250) =>
                    {
                        last_tx_restart = Instant::now();
                        listener.cancel_searches();
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        listener.cancel_searches()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        *shared
            .listener
            .lock()
            .expect("listener lock is never poisoned") = Some(task.abort_handle());
        let thread = std::thread::Builder::new()
            .name("miner-control".into())
            .spawn(move || mining_loop(&shared))
            .expect("spawning the mining thread");
        (handle, thread)
    }

    /// Installs Byzantine faults ([`crate::byzantine`]) in the miner.
    pub fn set_faults(&self, faults: Faults) {
        *self
            .shared
            .faults
            .lock()
            .expect("faults lock is never poisoned") = faults;
    }

    /// The address `generate` pays to without an explicit one.
    pub fn default_pay_to(&self) -> PubkeyHash {
        self.shared.pay_to
    }

    /// `setmining`: switches continuous mining and optionally its thread count.
    pub fn set_mining(&self, on: bool, threads: Option<usize>) {
        {
            let mut s = self
                .shared
                .settings
                .lock()
                .expect("settings lock is never poisoned");
            s.mining = on;
            if let Some(t) = threads {
                s.threads = t;
            }
        }
        self.restart_hashps();
        self.cancel_searches();
        self.shared.wake.notify_all();
    }

    /// `sethashrate`: caps continuous mining at `rate` hashes per second (`None`: uncapped;
    /// `Some(0)`: no hashing until the next change) and switches it on, as `--hashrate` does.
    /// A running search follows the new cap within a few milliseconds, without restarting.
    pub fn set_hashrate(&self, rate: Option<u64>) {
        self.shared.throttle.set_rate(rate);
        self.shared
            .settings
            .lock()
            .expect("settings lock is never poisoned")
            .mining = true;
        self.restart_hashps();
        self.shared.wake.notify_all();
    }

    /// Starts a new `hashps` average from now.
    fn restart_hashps(&self) {
        *self
            .shared
            .epoch
            .lock()
            .expect("epoch lock is never poisoned") = (Instant::now(), self.shared.total_hashes());
    }

    /// Local state for `getmininginfo`.
    pub fn info(&self) -> LocalMiningInfo {
        let s = *self
            .shared
            .settings
            .lock()
            .expect("settings lock is never poisoned");
        let (since, base) = *self
            .shared
            .epoch
            .lock()
            .expect("epoch lock is never poisoned");
        let secs = since.elapsed().as_secs_f64().max(1e-3);
        LocalMiningInfo {
            mining: s.mining,
            threads: s.threads,
            hashps: self.shared.total_hashes().saturating_sub(base) as f64 / secs,
            hashrate_limit: self.shared.throttle.rate(),
            kernel: Kernel::best().name(),
        }
    }

    /// Mines `n` blocks on the local tip now, paying `pay_to`; returns their hashes.
    pub async fn generate(
        &self,
        n: u32,
        pay_to: PubkeyHash,
    ) -> Result<Vec<BlockHash>, MiningError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let threads = shared
                .settings
                .lock()
                .expect("settings lock is never poisoned")
                .threads;
            let mut hashes = Vec::with_capacity(n as usize);
            while hashes.len() < n as usize {
                if shared.shutdown.load(Ordering::Relaxed) {
                    return Err(MiningError::Stopped);
                }
                if let Some(hash) = mine_one(&shared, pay_to, threads, None)? {
                    hashes.push(hash);
                }
            }
            Ok(hashes)
        })
        .await
        .map_err(|e| MiningError::Miner(format!("generate task failed: {e}")))?
    }

    fn cancel_searches(&self) {
        for token in self
            .shared
            .searches
            .lock()
            .expect("search list lock is never poisoned")
            .drain(..)
        {
            token.cancel();
        }
    }

    /// Stops mining for good (shutdown); join the thread returned by `start` afterwards.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(task) = self
            .shared
            .listener
            .lock()
            .expect("listener lock is never poisoned")
            .take()
        {
            task.abort();
        }
        self.cancel_searches();
        self.shared.wake.notify_all();
    }
}

/// A random starting coinbase tag (zero if the OS has no randomness: still correct, only
/// no longer independent of other nodes paying the same address).
fn random_tag() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(e) => {
            tracing::warn!("no randomness for the coinbase tag: {e}");
            0
        }
    }
}

/// Reads the rate parameter of `sethashrate`: hashes per second as a number or as a string
/// with a suffix (`"250k"`, `"1.5M"`), `0` for no hashing, `null` for no cap.
pub fn hashrate_param(value: &serde_json::Value) -> Result<Option<u64>, String> {
    use serde_json::Value;
    let rate = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("rate must be a whole number of hashes per second, not {n}"))?,
        Value::String(text) => cairn_miner::parse_hashrate(text).map_err(|e| e.to_string())?,
        other => {
            return Err(format!(
                "rate must be a number, a string such as \"250k\" or null, not {other}"
            ));
        }
    };
    if rate > cairn_miner::rate::MAX_HASHRATE {
        return Err(format!("rate {rate} is above 1e15 hashes per second"));
    }
    Ok(Some(rate))
}

impl Shared {
    /// Hashes computed so far by continuous, interval and `generate` mining.
    fn total_hashes(&self) -> u64 {
        self.throttle.hashes() + self.generated_hashes.load(Ordering::Relaxed)
    }
}

/// One search on a fresh template, capped by `throttle` (`None`: uncapped, counted as
/// `generate` work); `Ok(None)` when cancelled (tip or template changed). A Byzantine node
/// ([`crate::byzantine`]) poisons the template and gossips the block unimported
/// (`invalid-blocks`), or mines a twin on the same parent (`equivocate`).
fn mine_one(
    shared: &Shared,
    pay_to: PubkeyHash,
    threads: usize,
    throttle: Option<&Throttle>,
) -> Result<Option<BlockHash>, MiningError> {
    let cancel = CancelToken::new();
    shared
        .searches
        .lock()
        .expect("search list lock is never poisoned")
        .push(cancel.clone());
    let tag = shared.extranonce.fetch_add(1, Ordering::Relaxed);
    let mut template = shared
        .chain
        .template_blocking(pay_to, tag.to_le_bytes().to_vec())
        .map_err(|_| MiningError::Stopped)?;
    let faults = *shared.faults.lock().expect("faults lock is never poisoned");
    if faults.invalid_blocks {
        byzantine::poison(&mut template);
    }
    let Some(block) = search(shared, &template, threads, throttle, &cancel)? else {
        return Ok(None);
    };
    let hash = block.block_hash();
    if faults.invalid_blocks {
        tracing::info!(%hash, "invalid-blocks: gossiping a block that spends a missing coin");
        shared
            .chain
            .announce(NodeEvent::BlockAccepted(Arc::new(block)));
        return Ok(Some(hash));
    }
    let twin = if faults.equivocate {
        let twin = byzantine::equivocal_twin(&template);
        search(shared, &twin, threads, throttle, &cancel)?
    } else {
        None
    };
    submit(shared, block)?;
    if let Some(twin) = twin {
        tracing::info!(%hash, twin = %twin.block_hash(), "equivocate: two blocks on one parent");
        submit(shared, twin)?;
    }
    Ok(Some(hash))
}

/// Searches a nonce for `template`, capped by `throttle` (`None`: uncapped, counted as
/// `generate` work); `None` when cancelled.
fn search(
    shared: &Shared,
    template: &cairn_core::Block,
    threads: usize,
    throttle: Option<&Throttle>,
    cancel: &CancelToken,
) -> Result<Option<cairn_core::Block>, MiningError> {
    let target = Target::from_compact(template.header.bits)
        .map_err(|e| MiningError::Miner(format!("template bits: {e}")))?;
    let miner = Miner::new(MinerConfig {
        threads,
        kernel: None,
        throttle: throttle.cloned(),
    })
    .map_err(|e| MiningError::Miner(e.to_string()))?;
    let found = miner
        .search(template, &target, cancel)
        .map_err(|e| MiningError::Miner(e.to_string()))?;
    if throttle.is_none() {
        shared
            .generated_hashes
            .fetch_add(miner.hashes_done(), Ordering::Relaxed);
    }
    Ok(found)
}

/// Imports a block we mined.
fn submit(shared: &Shared, block: cairn_core::Block) -> Result<(), MiningError> {
    let hash = block.block_hash();
    let report = shared
        .chain
        .submit_mined_block_blocking(block)
        .map_err(|e| match e {
            QueryError::Stopped(_) => MiningError::Stopped,
            QueryError::Failed(e) => MiningError::Miner(e.to_string()),
        })?;
    match report.outcome {
        ImportOutcome::Invalid(e) => Err(MiningError::Rejected {
            hash,
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}

fn mining_loop(shared: &Shared) {
    let mut next_slot = Instant::now();
    loop {
        let settings = {
            let mut s = shared
                .settings
                .lock()
                .expect("settings lock is never poisoned");
            while !s.mining && !shared.shutdown.load(Ordering::SeqCst) {
                s = shared
                    .wake
                    .wait(s)
                    .expect("settings lock is never poisoned");
                next_slot = Instant::now();
            }
            *s
        };
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        if let Some(interval) = settings.block_time {
            let now = Instant::now();
            if now < next_slot {
                let s = shared
                    .settings
                    .lock()
                    .expect("settings lock is never poisoned");
                let _ = shared.wake.wait_timeout(s, next_slot - now);
                continue;
            }
            next_slot = now + Duration::from_secs(interval);
        }
        loop {
            match mine_one(
                shared,
                shared.pay_to,
                settings.threads,
                Some(&shared.throttle),
            ) {
                Ok(Some(hash)) => {
                    tracing::debug!(%hash, "mined a block");
                    break;
                }
                // Cancelled: a new tip or template. Interval mining retries on the new tip
                // within the same slot; continuous mining simply goes on.
                Ok(None) => {
                    let s = shared
                        .settings
                        .lock()
                        .expect("settings lock is never poisoned");
                    if !s.mining
                        || shared.shutdown.load(Ordering::SeqCst)
                        || s.threads != settings.threads
                    {
                        break;
                    }
                    if settings.block_time.is_none() {
                        break;
                    }
                }
                Err(MiningError::Stopped) => return,
                Err(e) => {
                    tracing::error!("mining: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hashrate_param;
    use serde_json::json;

    #[test]
    fn the_sethashrate_rate_is_a_number_a_suffixed_string_or_null() {
        assert_eq!(hashrate_param(&json!(250_000)), Ok(Some(250_000)));
        assert_eq!(hashrate_param(&json!("1.5M")), Ok(Some(1_500_000)));
        assert_eq!(hashrate_param(&json!(0)), Ok(Some(0)));
        assert_eq!(hashrate_param(&json!(null)), Ok(None));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("fast"),
            json!(true),
            json!([1]),
            json!(1e18),
        ] {
            assert!(hashrate_param(&bad).is_err(), "{bad}");
        }
    }
}
