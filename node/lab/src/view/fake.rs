//! Test doubles: [`MemorySource`], a node held in memory whose chain a test edits, so that
//! followers, the model and the server can be exercised without processes.

use super::source::{BlockBody, NodeSource, SourceError, Summary, TxSpends};
use cairn_rpc::types::{BlockStatus, BlockTree, TreeBlock};
use std::collections::HashMap;
use std::sync::Mutex;

/// The chain of a [`MemorySource`].
#[derive(Debug, Default, Clone)]
pub struct FakeChain {
    /// Whether it answers.
    pub up: bool,
    /// Its active tip.
    pub tip: String,
    /// Its blocks by hash: (tree entry, txids).
    pub blocks: HashMap<String, (TreeBlock, Vec<String>)>,
    /// Its mempool.
    pub mempool: Vec<String>,
    /// The peer ids it bans.
    pub banned: Vec<String>,
    /// Every transaction it knows.
    pub txs: HashMap<String, TxSpends>,
}

impl FakeChain {
    /// Adds a block on `parent` with `txids` (a coinbase named after the block comes first).
    pub fn add(&mut self, hash: &str, parent: &str, txids: &[&str]) {
        let height = self.blocks.get(parent).map_or(0, |(b, _)| b.height + 1);
        let mut all = vec![format!("cb-{hash}")];
        all.extend(txids.iter().map(|t| t.to_string()));
        self.txs.insert(
            all[0].clone(),
            TxSpends {
                txid: all[0].clone(),
                spends: vec![],
            },
        );
        self.blocks.insert(
            hash.to_owned(),
            (
                TreeBlock {
                    hash: hash.to_owned(),
                    parent: parent.to_owned(),
                    height,
                    time: 1_700_000_000 + u64::from(height),
                    txs: Some(all.len()),
                    status: BlockStatus::Side,
                    first_seen_ms: Some(1_000 + u64::from(height)),
                },
                all,
            ),
        );
    }

    /// Makes `tip` the active tip: its ancestors active, every other block side.
    pub fn activate(&mut self, tip: &str) {
        for (b, _) in self.blocks.values_mut() {
            if b.status == BlockStatus::Active {
                b.status = BlockStatus::Side;
            }
        }
        let mut at = tip.to_owned();
        while let Some((b, _)) = self.blocks.get_mut(&at) {
            b.status = BlockStatus::Active;
            at = b.parent.clone();
        }
        self.tip = tip.to_owned();
    }

    /// Adds a transaction spending `spends`.
    pub fn tx(&mut self, txid: &str, spends: &[&str]) {
        self.txs.insert(
            txid.to_owned(),
            TxSpends {
                txid: txid.to_owned(),
                spends: spends.iter().map(|s| s.to_string()).collect(),
            },
        );
    }

    fn height_of(&self, hash: &str) -> u32 {
        self.blocks.get(hash).map_or(0, |(b, _)| b.height)
    }
}

/// A node in memory.
#[derive(Debug)]
pub struct MemorySource {
    name: String,
    /// Its chain; tests edit it.
    pub chain: Mutex<FakeChain>,
}

impl MemorySource {
    /// A node called `name` holding `chain`.
    pub fn new(name: &str, chain: FakeChain) -> MemorySource {
        MemorySource {
            name: name.to_owned(),
            chain: Mutex::new(chain),
        }
    }

    /// Edits the chain.
    pub fn edit(&self, f: impl FnOnce(&mut FakeChain)) {
        f(&mut self.chain.lock().unwrap());
    }

    fn read<T>(&self, f: impl FnOnce(&FakeChain) -> T) -> Result<T, SourceError> {
        let chain = self.chain.lock().unwrap();
        if !chain.up {
            return Err(SourceError::Unreachable {
                node: self.name.clone(),
                reason: "down".into(),
            });
        }
        Ok(f(&chain))
    }
}

impl NodeSource for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn summary(&self) -> Result<Summary, SourceError> {
        self.read(|c| Summary {
            tip: c.tip.clone(),
            height: c.height_of(&c.tip),
            headers: c.blocks.len(),
        })
    }

    fn tree(&self, from: u32) -> Result<BlockTree, SourceError> {
        self.read(|c| {
            let mut blocks: Vec<TreeBlock> = c
                .blocks
                .values()
                .map(|(b, _)| b.clone())
                .filter(|b| b.height >= from)
                .collect();
            blocks.sort_by(|a, b| (a.height, &a.hash).cmp(&(b.height, &b.hash)));
            BlockTree {
                tip: c.tip.clone(),
                height: c.height_of(&c.tip),
                from,
                blocks,
            }
        })
    }

    fn block(&self, hash: &str) -> Result<Option<BlockBody>, SourceError> {
        self.read(|c| {
            let (b, txids) = c.blocks.get(hash)?;
            if b.status == BlockStatus::HeadersOnly {
                return None;
            }
            Some(BlockBody {
                hash: b.hash.clone(),
                parent: b.parent.clone(),
                height: b.height,
                time: b.time,
                bits: "207fffff".into(),
                nonce: 7,
                txs: txids.iter().filter_map(|t| c.txs.get(t).cloned()).collect(),
            })
        })
    }

    fn confirmations(&self, hash: &str) -> Result<u32, SourceError> {
        self.read(|c| match c.blocks.get(hash) {
            Some((b, _)) if b.status == BlockStatus::Active => c.height_of(&c.tip) - b.height + 1,
            _ => 0,
        })
    }

    fn mempool(&self) -> Result<Vec<String>, SourceError> {
        self.read(|c| c.mempool.clone())
    }

    fn banned(&self) -> Result<Vec<String>, SourceError> {
        self.read(|c| {
            let mut ids = c.banned.clone();
            ids.sort();
            ids
        })
    }

    fn peer_id(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn tx(&self, txid: &str) -> Result<Option<TxSpends>, SourceError> {
        self.read(|c| c.txs.get(txid).cloned())
    }

    fn events(&self) -> Option<(String, String)> {
        None
    }
}
