//! A decoded block through `check_block` and `accept_block` on a fixed chain: genesis plus
//! three blocks mined by core's [`TestChain`], rebuilt fresh for every input so one input
//! never sees another's effects.
//!
//! Random bytes almost never commit to their own body, so each block is tried twice: as
//! sent, and *repaired* (merkle root recomputed, nonce ground against its own `bits`, which
//! regtest's limit makes a coin toss) so the fuzzer reaches the contextual and transaction
//! rules instead of stopping at the merkle check.
//!
//! Invariants: no panic; a block `check_block` refuses never becomes the tip; a block that
//! becomes the tip extends its parent by one height and exactly its own work; any other
//! outcome leaves the tip, height and UTXO set as they were.

use super::decode::params;
use cairn_core::encoding;
use cairn_core::sigcheck::Parallelism;
use cairn_core::store::UtxoStats;
use cairn_core::testkit::TestChain;
use cairn_core::validation::{check_block, check_proof_of_work};
use cairn_core::{Block, ChainState, ImportOutcome, MemoryStore, Target};
use std::sync::OnceLock;

/// Nonces tried when repairing a block's proof of work (each passes with p ≈ 1/2 at the
/// regtest limit; a harder `bits` is left unrepaired).
const REPAIR_TRIES: u32 = 64;

/// Height of the fixed chain's tip.
pub const FIXED_HEIGHT: u32 = 3;

/// The fixed chain, built once per process.
pub struct Fixture {
    /// Blocks 1..=3, in order.
    pub blocks: Vec<Block>,
    /// The time every input is accepted at: just after block 3.
    pub now: u64,
}

/// The fixed chain (deterministic: TestChain's clock and salts start from genesis).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut builder = TestChain::new(params().clone());
        let blocks = builder.build_chain(FIXED_HEIGHT as usize);
        Fixture {
            blocks,
            now: builder.now(),
        }
    })
}

/// A fresh chain state holding the fixed chain.
pub fn fixed_chain() -> ChainState<MemoryStore> {
    let fixture = fixture();
    let mut chain =
        ChainState::open(params().clone(), MemoryStore::new()).expect("memory store cannot fail");
    chain.set_parallelism(Parallelism::Sequential);
    for block in &fixture.blocks {
        let report = chain
            .accept_block(block.clone(), fixture.now)
            .expect("memory store cannot fail");
        assert_eq!(report.outcome, ImportOutcome::Active, "the fixed chain");
    }
    chain
}

/// Decodes `data` as a block and accepts it (as sent, then repaired) on the fixed chain.
pub fn block_accept(data: &[u8]) {
    let Ok(block) = encoding::decode::<Block>(data) else {
        return;
    };
    if let Some(repaired) = repair(&block) {
        accept_on_fixed_chain(repaired);
    }
    accept_on_fixed_chain(block);
}

/// The block with a merkle root committing to its body and a nonce meeting its own bits;
/// `None` when it already was so, or when its bits are too hard to grind.
fn repair(block: &Block) -> Option<Block> {
    let mut fixed = block.clone();
    fixed.header.merkle_root = fixed.compute_merkle_root();
    for _ in 0..REPAIR_TRIES {
        if check_proof_of_work(&fixed.block_hash(), fixed.header.bits, params()).is_ok() {
            return (fixed != *block).then_some(fixed);
        }
        fixed.header.nonce = fixed.header.nonce.wrapping_add(1);
    }
    None
}

/// What must not move when a block is not connected.
#[derive(Debug, PartialEq)]
struct ActiveState {
    tip: cairn_core::BlockHash,
    height: u32,
    utxo: UtxoStats,
}

fn active_state(chain: &ChainState<MemoryStore>) -> ActiveState {
    ActiveState {
        tip: chain.tip().hash,
        height: chain.height(),
        utxo: chain.utxo_stats().expect("memory store cannot fail"),
    }
}

/// Accepts `block` on a fresh fixed chain and checks the invariants.
fn accept_on_fixed_chain(block: Block) {
    let mut chain = fixed_chain();
    let before = active_state(&chain);
    let hash = block.block_hash();
    let parent = chain.entry(&block.header.prev_blockhash).cloned();
    let context_free = check_block(block.clone(), params());
    let report = chain
        .accept_block(block.clone(), fixture().now)
        .expect("memory store cannot fail");
    let after = active_state(&chain);
    match &report.outcome {
        ImportOutcome::Active => {
            assert!(
                context_free.is_ok(),
                "a block check_block refuses ({:?}) became active",
                context_free.err()
            );
            let parent = parent.expect("an active block has a known parent");
            let tip = chain.tip();
            assert_eq!(tip.hash, hash, "the accepted block is not the tip");
            assert_eq!(tip.height, parent.height + 1, "tip height");
            let work = Target::from_compact(block.header.bits)
                .expect("an active block has valid bits")
                .work();
            assert_eq!(
                tip.chainwork,
                parent.chainwork.saturating_add(work),
                "tip work"
            );
            let changed = report.tip_changed.as_ref().expect("the tip moved");
            assert_eq!(changed.connected.last().map(|b| b.hash), Some(hash));
            assert!(after.height > before.height || !changed.reverted.is_empty());
        }
        _ => {
            assert!(
                report.tip_changed.is_none(),
                "outcome {:?} reported a tip change",
                report.outcome
            );
            assert_eq!(
                after, before,
                "outcome {:?} moved the chain",
                report.outcome
            );
        }
    }
}
