//! Byzantine modes: `cairn node --byzantine MODE[,MODE...]` runs a real node with one fault
//! injected, so users can watch honest nodes cope (INTERFACE "Byzantine nodes").
//!
//! [`MODES`] is the one list (STYLE §14): each mode's name, its help, and the fault it
//! installs in [`Faults`]. The node reads [`Faults`] at a few hooks, all defined here:
//! - `empty-bodies`: the sync server answers block requests with [`strip_bodies`];
//! - `invalid-blocks`: the miner [`poison`]s each template and gossips the block without
//!   importing it;
//! - `equivocate`: the miner also mines an [`equivocal_twin`] of each block, and the relay
//!   sends each of the two to one half of the peers ([`half_of`]);
//! - `lie-work`: the handshake claims [`inflated_work`], and sync requests are held
//!   unanswered ([`hold_unanswered`]);
//! - `tx-flood`: [`flood_transactions`] gossips transactions with invalid signatures as
//!   fast as the node can;
//! - `withhold-blocks` (beyond INTERFACE): the sync server answers status and headers
//!   honestly and holds every block request unanswered ([`hold_unanswered`]), so a
//!   downloading peer sees it stall.

use crate::chain_task::{ChainHandle, NodeEvent};
use cairn_core::merkle::merkle_root;
use cairn_core::{
    Amount, Block, OutPoint, SecretKey, Transaction, TxIn, TxOut, Txid, Work, hash::sha256,
};
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;

/// The faults a node runs with (all off for an honest node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer block requests with the header and no transactions.
    pub empty_bodies: bool,
    /// Mine and gossip blocks that spend a coin that does not exist.
    pub invalid_blocks: bool,
    /// Mine two blocks on each parent, one for each half of the peers.
    pub equivocate: bool,
    /// Claim far more chainwork than we have, never answer sync requests.
    pub lie_work: bool,
    /// Gossip transactions with invalid signatures as fast as possible.
    pub tx_flood: bool,
    /// Answer headers, never block requests.
    pub withhold_blocks: bool,
}

impl Faults {
    /// Whether any fault is installed.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// The names of the installed modes, comma-separated (for logs).
    pub fn names(&self) -> String {
        MODES
            .iter()
            .filter(|m| {
                let mut one = Faults::default();
                (m.install)(&mut one);
                one.merged_into(*self) == *self && one.any()
            })
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn merged_into(self, other: Faults) -> Faults {
        Faults {
            empty_bodies: self.empty_bodies || other.empty_bodies,
            invalid_blocks: self.invalid_blocks || other.invalid_blocks,
            equivocate: self.equivocate || other.equivocate,
            lie_work: self.lie_work || other.lie_work,
            tx_flood: self.tx_flood || other.tx_flood,
            withhold_blocks: self.withhold_blocks || other.withhold_blocks,
        }
    }
}

/// One Byzantine mode.
pub struct Mode {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it does.
    pub help: &'static str,
    /// Installs its fault.
    pub install: fn(&mut Faults),
}

/// Every mode.
pub const MODES: &[Mode] = &[
    Mode {
        name: "empty-bodies",
        help: "answers every block request with the real header and no transactions",
        install: |f| f.empty_bodies = true,
    },
    Mode {
        name: "invalid-blocks",
        help: "mines, on its tip, blocks with valid proof of work that spend a coin that does not exist, and gossips them",
        install: |f| f.invalid_blocks = true,
    },
    Mode {
        name: "equivocate",
        help: "mines two different blocks on each parent and sends each to a different half of its peers",
        install: |f| f.equivocate = true,
    },
    Mode {
        name: "lie-work",
        help: "claims in its status far more chainwork than it has and never answers sync requests",
        install: |f| f.lie_work = true,
    },
    Mode {
        name: "tx-flood",
        help: "sends transactions with invalid signatures as fast as it can",
        install: |f| f.tx_flood = true,
    },
    Mode {
        name: "withhold-blocks",
        help: "answers status and headers honestly and never answers a block request",
        install: |f| f.withhold_blocks = true,
    },
];

/// A mode name that is not in [`MODES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Byzantine mode {name:?}; modes: {}", mode_names())]
pub struct UnknownMode {
    /// As given.
    pub name: String,
}

/// Every mode's name, comma-separated.
pub fn mode_names() -> String {
    MODES.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// Parses `MODE[,MODE...]` (repeatable flags are parsed one by one and merged).
pub fn parse(list: &str) -> Result<Faults, UnknownMode> {
    let mut faults = Faults::default();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mode = MODES
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| UnknownMode { name: name.into() })?;
        (mode.install)(&mut faults);
    }
    Ok(faults)
}

/// `empty-bodies`: each block reduced to its header, no transactions.
pub fn strip_bodies(blocks: Vec<Block>) -> Vec<Block> {
    blocks
        .into_iter()
        .map(|b| Block {
            header: b.header,
            txs: Vec::new(),
        })
        .collect()
}

/// `lie-work`: the chainwork claimed in our status, 2^200 above the truth.
pub fn inflated_work(real: Work) -> Work {
    let mut lie = [0u8; 32];
    lie[6] = 1;
    real.saturating_add(Work::from_be_bytes(lie))
}

/// How long `lie-work` holds a sync request before dropping it (longer than any
/// requester waits).
pub const HOLD_UNANSWERED: Duration = Duration::from_secs(120);

/// `lie-work`: keeps `channel` (a sync request's response channel) unanswered until the
/// requester has long given up.
pub fn hold_unanswered<T: Send + 'static>(channel: T) {
    tokio::spawn(async move {
        tokio::time::sleep(HOLD_UNANSWERED).await;
        drop(channel);
    });
}

/// `invalid-blocks`: adds to a template a transaction spending a coin that does not exist
/// (well formed, so only the UTXO check can refuse it), and fixes the merkle root.
pub fn poison(template: &mut Block) {
    let height = template.txs[0].lock_height;
    let missing = OutPoint {
        txid: Txid::from_byte_array(sha256(
            format!("no such coin {height} {}", template.header.time).as_bytes(),
        )),
        vout: 0,
    };
    let key = SecretKey::from_bytes(&sha256(b"cairn byzantine invalid-blocks"))
        .expect("a SHA-256 output is a valid secp256k1 key with overwhelming probability");
    let tx = Transaction {
        version: cairn_core::validation::TX_VERSION,
        inputs: vec![TxIn {
            prevout: missing,
            signature: [1; 64],
            public_key: key.public_key(),
        }],
        outputs: vec![TxOut {
            amount: Amount::from_base(1_000),
            address: key.pubkey_hash(),
        }],
        lock_height: 0,
        data: Vec::new(),
    };
    template.txs.push(tx);
    fix_merkle_root(template);
}

/// `equivocate`: the same template with another coinbase, so a different block on the
/// same parent.
pub fn equivocal_twin(template: &Block) -> Block {
    let mut twin = template.clone();
    twin.txs[0].data.extend_from_slice(b"/twin");
    twin.header.nonce = 0;
    fix_merkle_root(&mut twin);
    twin
}

fn fix_merkle_root(block: &mut Block) {
    let wtxids: Vec<_> = block.txs.iter().map(Transaction::wtxid).collect();
    block.header.merkle_root = merkle_root(&wtxids);
}

/// `equivocate`: which half (0 or 1) of `peers` (in a stable order) `peer` is in.
pub fn half_of(peer: &PeerId, peers: &[PeerId]) -> Option<usize> {
    let mut sorted = peers.to_vec();
    sorted.sort();
    sorted.iter().position(|p| p == peer).map(|i| i % 2)
}

/// Transactions queued on the node's event channel beyond which the flood waits (the
/// channel also carries tip changes to the miner and the network).
const FLOOD_BACKLOG: usize = 1024;

/// `tx-flood`: forever gossips transactions that spend real, unspent coins of the dev
/// accounts with signatures that do not verify, so every receiver pays for an ECDSA check.
/// Runs until the node stops (the network aborts it).
pub async fn flood_transactions(chain: ChainHandle) {
    let params = chain.params().clone();
    let keys: Vec<SecretKey> = params
        .config
        .dev_accounts
        .iter()
        .filter_map(|a| SecretKey::from_hex(&a.secret_key_hex).ok())
        .collect();
    let genesis = &params.genesis_block.txs[0];
    let genesis_txid = genesis.txid();
    let coins: Vec<(OutPoint, TxOut, SecretKey)> = genesis
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(vout, out)| {
            let key = keys.iter().find(|k| k.pubkey_hash() == out.address)?;
            let outpoint = OutPoint {
                txid: genesis_txid,
                vout: vout as u32,
            };
            Some((outpoint, *out, key.clone()))
        })
        .collect();
    let mut sent: u64 = 0;
    let mut round: u64 = 0;
    loop {
        let wanted: Vec<OutPoint> = coins.iter().map(|c| c.0).collect();
        let Ok(unspent) = chain
            .call(move |s| {
                wanted
                    .iter()
                    .map(|o| matches!(s.chain.coin(o), Ok(Some(_))))
                    .collect::<Vec<bool>>()
            })
            .await
        else {
            return;
        };
        let live: Vec<&(OutPoint, TxOut, SecretKey)> = coins
            .iter()
            .zip(unspent)
            .filter_map(|(c, ok)| ok.then_some(c))
            .collect();
        if live.is_empty() {
            tracing::warn!("tx-flood: no unspent dev coin left to spend");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        for (outpoint, out, key) in live {
            for tx in forged_spends(&params, *outpoint, out, key, round, 64) {
                while chain.backlog() > FLOOD_BACKLOG {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                chain.announce(NodeEvent::TxAccepted {
                    txid: tx.txid(),
                    relay: Some(Arc::new(tx)),
                });
                sent += 1;
            }
            tokio::task::yield_now().await;
        }
        round += 1;
        if round.is_multiple_of(16) {
            tracing::info!(sent, "tx-flood: invalid transactions sent");
        }
    }
}

/// `count` different spends of one coin, signed once and then altered, so none of their
/// signatures verifies.
pub fn forged_spends(
    params: &cairn_core::ChainParams,
    outpoint: OutPoint,
    coin: &TxOut,
    key: &SecretKey,
    round: u64,
    count: u64,
) -> Vec<Transaction> {
    let fee = 10_000u64;
    let base = coin.amount.to_base().saturating_sub(fee);
    let mut signed = Transaction {
        version: cairn_core::validation::TX_VERSION,
        inputs: vec![TxIn {
            prevout: outpoint,
            signature: [0; 64],
            public_key: key.public_key(),
        }],
        outputs: vec![TxOut {
            amount: Amount::from_base(base),
            address: key.pubkey_hash(),
        }],
        lock_height: 0,
        data: Vec::new(),
    };
    signed.sign(&params.network_magic, &[(coin.amount, key)]);
    (0..count)
        .map(|i| {
            let mut tx = signed.clone();
            // Each output amount differs from the signed one: a new txid, a bad signature.
            let less = 1 + (round * count + i) % base.max(1);
            tx.outputs[0].amount = Amount::from_base(base.saturating_sub(less));
            tx
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_the_table() {
        let f = parse("empty-bodies, lie-work").unwrap();
        assert!(f.empty_bodies && f.lie_work && !f.tx_flood);
        assert_eq!(f.names(), "empty-bodies,lie-work");
        assert_eq!(parse("").unwrap(), Faults::default());
        let err = parse("empty-bodies,lie").unwrap_err();
        assert!(err.to_string().contains("\"lie\""), "{err}");
        assert!(err.to_string().contains("tx-flood"), "{err}");
        for mode in MODES {
            let mut one = Faults::default();
            (mode.install)(&mut one);
            assert!(one.any(), "{} installs nothing", mode.name);
            assert_eq!(parse(mode.name).unwrap(), one);
        }
    }

    #[test]
    fn lies_and_forgeries_are_what_they_claim() {
        let params = cairn_core::ChainParams::regtest();
        let real = Work::from_be_bytes([0; 32]);
        assert!(inflated_work(real) > real);
        let mut block = params.genesis_block.clone();
        let twin = equivocal_twin(&block);
        assert_ne!(twin.block_hash(), block.block_hash());
        assert_eq!(twin.header.prev_blockhash, block.header.prev_blockhash);
        poison(&mut block);
        assert_eq!(block.txs.len(), params.genesis_block.txs.len() + 1);
        let wtxids: Vec<_> = block.txs.iter().map(Transaction::wtxid).collect();
        assert_eq!(block.header.merkle_root, merkle_root(&wtxids));
        let stripped = strip_bodies(vec![block.clone()]);
        assert!(stripped[0].txs.is_empty());
        assert_eq!(stripped[0].header, block.header);
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let halves: Vec<usize> = peers.iter().map(|p| half_of(p, &peers).unwrap()).collect();
        assert_eq!(halves.iter().filter(|h| **h == 0).count(), 2);
    }
}
