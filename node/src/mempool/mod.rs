//! The mempool: valid unconfirmed transactions waiting for a block.
//!
//! Pure logic, like `cairn-core`: no I/O, no clock (time comes in as `now`, seconds), no
//! locks. The node owns one [`Mempool`], feeds it transactions and chain events, and
//! performs the effects (relay, logging) of what each call returns.
//!
//! - Every consensus rule is `cairn-core`'s ([`check_transaction`], [`check_tx_inputs`],
//!   [`verify_tx_signatures`]): a transaction the pool takes is one a block could include
//!   at the next height. An input may spend an output of another pool transaction
//!   (unconfirmed chains); such an output counts as a non-coinbase coin at that height.
//! - Policy on top: a minimum relay fee rate, full replace-by-fee (no opt-in signal, as in
//!   Bitcoin Core 28; [`replacement`]), a byte cap enforced by evicting the lowest
//!   descendant-package fee rate, ancestor/descendant chain limits, and expiry.
//! - Following the chain ([`tip_change`]) costs work in proportion to the blocks connected;
//!   only a reorganisation re-validates the pool. A transaction with a missing input costs a
//!   bounded number of store reads ([`missing`]).
//! - Block templates pick ancestor packages by fee rate, so a high-fee child pays for its
//!   parent (CPFP).
//!
//! Every fee-rate comparison is exact ([`FeeRate`] compares by cross-multiplication).

mod error;
mod graph;
mod missing;
mod replacement;
mod select;
#[cfg(test)]
mod tests;
mod tip_change;

pub use error::{MempoolError, ReplacementRule};
pub use tip_change::ReorgReport;

use cairn_core::keys::PubkeyHash;
use cairn_core::sigcache::SigCache;
use cairn_core::sigcheck::verify_tx_signatures_cached;
use cairn_core::store::UtxoReader;
use cairn_core::validation::{check_transaction, check_tx_inputs, verify_tx_signatures};
use cairn_core::{Amount, ChainParams, Coin, OutPoint, Transaction, TxError, TxOut, Txid};
use graph::Entry;
use missing::{ALREADY_KNOWN_PROBES, MissingInputs};
use replacement::Replacement;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Policy knobs of the pool. Consensus rules are not configurable; these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most encoded transaction bytes held; above it the lowest fee rates are evicted.
    pub max_bytes: usize,
    /// Minimum fee rate to enter the pool, in base units per encoded byte.
    pub min_relay_fee_rate: u64,
    /// Transactions older than this many seconds are dropped by [`Mempool::expire`].
    pub expiry_secs: u64,
    /// Most in-pool ancestors of a transaction, itself included.
    pub max_ancestors: usize,
    /// Most in-pool descendants of a transaction, itself included.
    pub max_descendants: usize,
    /// Most pool transactions one replacement may evict (Bitcoin Core's rule 5).
    pub max_replacements: usize,
}

impl Default for MempoolConfig {
    /// 32 MB (32 full blocks; Bitcoin Core holds 300 MB for a much busier chain), 1 base
    /// unit per byte, and Bitcoin Core's 336-hour expiry, chains of 25 and 100 replacements.
    fn default() -> Self {
        MempoolConfig {
            max_bytes: 32_000_000,
            min_relay_fee_rate: 1,
            expiry_secs: 336 * 60 * 60,
            max_ancestors: 25,
            max_descendants: 25,
            max_replacements: 100,
        }
    }
}

/// A fee rate: `fee` base units over `size` bytes, compared exactly (no floating point).
#[derive(Debug, Clone, Copy)]
pub struct FeeRate {
    fee: u64,
    size: u64,
}

impl FeeRate {
    /// The rate of paying `fee` for `size` bytes (a zero size counts as one byte).
    pub fn new(fee: Amount, size: usize) -> FeeRate {
        FeeRate {
            fee: fee.to_base(),
            size: (size as u64).max(1),
        }
    }

    /// Base units per byte, for display (`getrawmempool` verbose).
    pub fn per_byte(&self) -> f64 {
        self.fee as f64 / self.size as f64
    }

    fn from_parts(fee: u64, size: u64) -> FeeRate {
        FeeRate {
            fee,
            size: size.max(1),
        }
    }
}

impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.fee) * u128::from(other.size))
            .cmp(&(u128::from(other.fee) * u128::from(self.size)))
    }
}
impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for FeeRate {}

/// Serialises as base units per byte (a JSON number), as `getrawmempool` shows it.
impl serde::Serialize for FeeRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.per_byte())
    }
}

impl std::fmt::Display for FeeRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}/B", self.per_byte())
    }
}

/// A transaction the pool took, and what it pushed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its txid.
    pub txid: Txid,
    /// Its fee.
    pub fee: Amount,
    /// Its encoded size.
    pub size: usize,
    /// Pool transactions it replaced by fee: direct conflicts and their descendants, in
    /// arrival order.
    pub replaced: Vec<Txid>,
    /// Pool transactions evicted to keep the pool under its byte cap (each victim, then
    /// its descendants).
    pub evicted: Vec<Txid>,
}

/// One pool transaction as `getrawmempool true` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Its txid.
    pub txid: Txid,
    /// Its fee.
    pub fee: Amount,
    /// Encoded size in bytes.
    pub size: usize,
    /// `fee / size`.
    pub fee_rate: FeeRate,
    /// When it entered the pool (seconds, the `now` it was accepted with).
    pub time: u64,
    /// In-pool parents (outputs it spends that are not confirmed).
    pub depends: Vec<Txid>,
    /// In-pool ancestors, itself included.
    pub ancestor_count: usize,
    /// In-pool descendants, itself included.
    pub descendant_count: usize,
}

/// Pool totals (`getmempoolinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: usize,
    /// Sum of their encoded sizes.
    pub bytes: usize,
    /// Minimum relay fee rate, base units per byte.
    pub minfee: u64,
}

/// A coin spent by a pool transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpentCoin {
    /// The coin's outpoint.
    pub outpoint: OutPoint,
    /// The coin. For an output of an unconfirmed parent, `height` is the height the pool
    /// expected the parent to be mined at.
    pub coin: Coin,
    /// The pool transaction spending it.
    pub spender: Txid,
}

/// An output created by a pool transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOutput {
    /// Its outpoint.
    pub outpoint: OutPoint,
    /// The output.
    pub output: TxOut,
    /// The pool transaction already spending it, if any.
    pub spent_by: Option<Txid>,
}

/// A transaction that passed every check, with what inserting it takes.
struct Candidate {
    txid: Txid,
    fee: Amount,
    size: usize,
    spent: Vec<Coin>,
    /// Direct conflicts and their descendants, in pool order.
    replaced: Vec<Txid>,
}

/// The pool of valid unconfirmed transactions.
#[derive(Debug)]
pub struct Mempool {
    params: ChainParams,
    config: MempoolConfig,
    entries: HashMap<Txid, Entry>,
    /// Which pool transaction spends each outpoint.
    spenders: HashMap<OutPoint, Txid>,
    bytes: usize,
    /// Arrival order: a parent always has a lower `seq` than its children.
    next_seq: u64,
    /// Outpoints found missing since the tip last moved.
    missing_inputs: MissingInputs,
    /// Where verified signatures are recorded, so the block that confirms them need not
    /// verify them again (shared with the chain state).
    sigcache: Option<Arc<SigCache>>,
}

impl Mempool {
    /// An empty pool for the chain of `params`.
    pub fn new(params: ChainParams, config: MempoolConfig) -> Mempool {
        Mempool {
            params,
            config,
            entries: HashMap::new(),
            spenders: HashMap::new(),
            bytes: 0,
            next_seq: 0,
            missing_inputs: MissingInputs::default(),
            sigcache: None,
        }
    }

    /// Records every signature the pool verifies in `cache` (and skips those it holds).
    pub fn set_sigcache(&mut self, cache: Arc<SigCache>) {
        self.sigcache = Some(cache);
    }

    /// The policy in force.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    // ----- admission -----------------------------------------------------------------

    /// Validates `tx` against the chain's coins (`utxos`, the active chain's UTXO set) and
    /// the pool, as it would be mined at `next_height` (tip height + 1), and adds it,
    /// replacing conflicts that pay less and evicting the cheapest transactions if the pool
    /// is over its byte cap. `now` becomes its arrival time.
    ///
    /// Checks run cheapest first: already known, coinbase, context-free rules, missing
    /// inputs (one found missing since the tip last moved before any is read), input rules (maturity, amounts, lock height), minimum relay fee,
    /// replace-by-fee rules, chain limits, signatures, byte cap. On any error the pool is
    /// unchanged.
    pub fn accept<U: UtxoReader + ?Sized>(
        &mut self,
        tx: Transaction,
        utxos: &U,
        next_height: u32,
        now: u64,
    ) -> Result<Accepted, MempoolError> {
        self.accept_at(tx, utxos, next_height, now, true)
    }

    /// Every check of [`Mempool::accept`] except the byte cap, without changing the pool
    /// (`testmempoolaccept`). `replaced` says what accepting it would replace; `evicted`
    /// is always empty.
    pub fn test_accept<U: UtxoReader + ?Sized>(
        &self,
        tx: &Transaction,
        utxos: &U,
        next_height: u32,
    ) -> Result<Accepted, MempoolError> {
        let candidate = self.validate(tx, utxos, next_height, true)?;
        Ok(Accepted {
            txid: candidate.txid,
            fee: candidate.fee,
            size: candidate.size,
            replaced: candidate.replaced,
            evicted: Vec::new(),
        })
    }

    /// [`Mempool::accept`] with the arrival time given, and signature checks skippable for
    /// transactions already verified against the same coins (see [`Mempool::reorg`]).
    fn accept_at<U: UtxoReader + ?Sized>(
        &mut self,
        tx: Transaction,
        utxos: &U,
        next_height: u32,
        time: u64,
        verify_signatures: bool,
    ) -> Result<Accepted, MempoolError> {
        let validated = self.validate(&tx, utxos, next_height, verify_signatures);
        if let Err(MempoolError::Tx(TxError::MissingOrSpent(outpoint))) = &validated {
            self.missing_inputs.insert(*outpoint);
        }
        let Candidate {
            txid,
            fee,
            size,
            spent,
            replaced,
        } = validated?;

        let mut removed: Vec<Entry> = replaced
            .iter()
            .rev()
            .map(|t| self.remove_entry(t))
            .collect();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert_entry(Entry::new(tx, txid, fee, size, time, seq, spent));

        let mut evicted = Vec::new();
        while self.bytes > self.config.max_bytes {
            let victim = self
                .lowest_descendant_score()
                .expect("a pool over its byte cap holds a transaction");
            let batch = self.with_descendants([victim]);
            for t in batch.iter().rev() {
                removed.push(self.remove_entry(t));
            }
            evicted.extend(batch);
            if !self.entries.contains_key(&txid) {
                // The newcomer is the cheapest: put back everything as it was.
                removed.retain(|e| e.txid != txid);
                removed.sort_by_key(|e| e.seq);
                for entry in removed {
                    self.insert_entry(entry);
                }
                return Err(MempoolError::Full);
            }
        }
        Ok(Accepted {
            txid,
            fee,
            size,
            replaced,
            evicted,
        })
    }

    /// Every check but the byte cap, reading only.
    fn validate<U: UtxoReader + ?Sized>(
        &self,
        tx: &Transaction,
        utxos: &U,
        next_height: u32,
        verify_signatures: bool,
    ) -> Result<Candidate, MempoolError> {
        let txid = tx.txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        if tx.is_coinbase() {
            return Err(TxError::UnexpectedCoinbase.into());
        }
        check_transaction(tx, &self.params)?;
        // An input already found missing on this tip fails the transaction before any
        // input is read from the store.
        if let Some(input) = tx.inputs.iter().find(|i| {
            !self.entries.contains_key(&i.prevout.txid) && self.missing_inputs.contains(&i.prevout)
        }) {
            return Err(self.missing_input(tx, txid, input.prevout, utxos));
        }

        let mut spent = Vec::with_capacity(tx.inputs.len());
        let mut parents = BTreeSet::new();
        let mut conflicts = BTreeSet::new();
        for input in &tx.inputs {
            let prevout = input.prevout;
            if let Some(spender) = self.spenders.get(&prevout) {
                conflicts.insert(*spender);
            }
            let coin = match self.entries.get(&prevout.txid) {
                Some(parent) => {
                    parents.insert(prevout.txid);
                    parent
                        .tx
                        .outputs
                        .get(prevout.vout as usize)
                        .map(|output| Coin {
                            output: *output,
                            height: next_height,
                            is_coinbase: false,
                        })
                }
                None => utxos.coin(&prevout)?,
            };
            match coin {
                Some(coin) => spent.push(coin),
                None => return Err(self.missing_input(tx, txid, prevout, utxos)),
            }
        }

        let fee = check_tx_inputs(tx, &spent, next_height, &self.params)?;
        let size = tx.encoded_size();
        if u128::from(fee.to_base()) < u128::from(self.config.min_relay_fee_rate) * size as u128 {
            return Err(MempoolError::MinRelayFee {
                fee,
                size,
                min: self.config.min_relay_fee_rate,
            });
        }

        let replaced = if conflicts.is_empty() {
            Vec::new()
        } else {
            self.check_replacement(&Replacement {
                txid,
                fee,
                size,
                conflicts: &conflicts,
                parents: &parents,
            })?
        };

        let ancestors = self.ancestor_set(parents.iter().copied());
        if ancestors.len() + 1 > self.config.max_ancestors {
            return Err(MempoolError::TooLongChain {
                what: "its unconfirmed ancestors",
                limit: self.config.max_ancestors,
            });
        }
        if ancestors
            .iter()
            .any(|a| self.entries[a].descendants.count + 1 > self.config.max_descendants)
        {
            return Err(MempoolError::TooLongChain {
                what: "the descendants of an unconfirmed ancestor",
                limit: self.config.max_descendants,
            });
        }

        if verify_signatures {
            match &self.sigcache {
                Some(cache) => verify_tx_signatures_cached(tx, &spent, &self.params, cache)?,
                None => verify_tx_signatures(tx, &spent, &self.params)?,
            }
        }
        Ok(Candidate {
            txid,
            fee,
            size,
            spent,
            replaced,
        })
    }

    /// The verdict on `tx` (`txid`), whose input `prevout` is neither in the pool nor
    /// among the coins: like Bitcoin Core, a confirmed transaction sent again is known, not
    /// invalid, which only a bounded number of its outputs are read to tell.
    fn missing_input<U: UtxoReader + ?Sized>(
        &self,
        tx: &Transaction,
        txid: Txid,
        prevout: OutPoint,
        utxos: &U,
    ) -> MempoolError {
        let probes = tx.outputs.len().min(ALREADY_KNOWN_PROBES) as u32;
        for vout in 0..probes {
            match utxos.coin(&OutPoint { txid, vout }) {
                Ok(Some(_)) => return MempoolError::AlreadyKnown(txid),
                Ok(None) => {}
                Err(e) => return e.into(),
            }
        }
        TxError::MissingOrSpent(prevout).into()
    }

    // ----- chain events and time -----------------------------------------------------

    /// Drops transactions that entered the pool more than `expiry_secs` before `now`, with
    /// their descendants. Returns what it dropped.
    pub fn expire(&mut self, now: u64) -> Vec<Txid> {
        let expiry = self.config.expiry_secs;
        let old: Vec<Txid> = self
            .entries
            .values()
            .filter(|e| now.saturating_sub(e.time) > expiry)
            .map(|e| e.txid)
            .collect();
        self.remove_with_descendants(old)
    }

    // ----- queries -------------------------------------------------------------------

    /// Whether the pool holds `txid`.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// A pool transaction.
    pub fn get(&self, txid: &Txid) -> Option<&Transaction> {
        self.entries.get(txid).map(|e| &e.tx)
    }

    /// Every txid, in arrival order.
    pub fn txids(&self) -> Vec<Txid> {
        self.sorted_entries().map(|e| e.txid).collect()
    }

    /// One transaction's details.
    pub fn entry(&self, txid: &Txid) -> Option<EntryInfo> {
        self.entries.get(txid).map(Entry::info)
    }

    /// Every transaction's details, in arrival order.
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.sorted_entries().map(Entry::info).collect()
    }

    /// Totals for `getmempoolinfo`.
    pub fn info(&self) -> MempoolInfo {
        MempoolInfo {
            size: self.entries.len(),
            bytes: self.bytes,
            minfee: self.config.min_relay_fee_rate,
        }
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender_of(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of encoded sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Coins paying to `address` (confirmed, or outputs of pool transactions) that pool
    /// transactions spend, in arrival order of the spenders (`getaddressmempool`).
    pub fn spent_by_address(&self, address: &PubkeyHash) -> Vec<SpentCoin> {
        self.sorted_entries()
            .flat_map(|e| {
                e.tx.inputs
                    .iter()
                    .zip(&e.spent)
                    .filter(|(_, coin)| coin.output.address == *address)
                    .map(|(input, coin)| SpentCoin {
                        outpoint: input.prevout,
                        coin: *coin,
                        spender: e.txid,
                    })
            })
            .collect()
    }

    /// Outputs of pool transactions paying to `address`, in arrival order. An address's
    /// unconfirmed balance is its confirmed coins minus [`Mempool::spent_by_address`] plus
    /// these.
    pub fn received_by_address(&self, address: &PubkeyHash) -> Vec<PoolOutput> {
        self.sorted_entries()
            .flat_map(|e| {
                e.tx.outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, output)| output.address == *address)
                    .map(|(vout, output)| {
                        let outpoint = OutPoint {
                            txid: e.txid,
                            vout: vout as u32,
                        };
                        PoolOutput {
                            outpoint,
                            output: *output,
                            spent_by: self.spender_of(&outpoint),
                        }
                    })
            })
            .collect()
    }

    /// Both sides of `getaddressmempool` at once: the outpoints of [`Mempool::spent_by_address`]
    /// and the outpoints and amounts of [`Mempool::received_by_address`].
    pub fn address_activity(
        &self,
        address: &PubkeyHash,
    ) -> (Vec<OutPoint>, Vec<(OutPoint, Amount)>) {
        let spent = self
            .spent_by_address(address)
            .into_iter()
            .map(|s| s.outpoint)
            .collect();
        let received = self
            .received_by_address(address)
            .into_iter()
            .map(|r| (r.outpoint, r.output.amount))
            .collect();
        (spent, received)
    }

    fn sorted_entries(&self) -> impl Iterator<Item = &Entry> {
        let mut all: Vec<&Entry> = self.entries.values().collect();
        all.sort_by_key(|e| e.seq);
        all.into_iter()
    }
}
