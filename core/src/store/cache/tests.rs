use super::{CoinCache, MIB};
use crate::block::Block;
use crate::chain::ChainState;
use crate::hash::BlockHash;
use crate::params::ChainParams;
use crate::store::{BlockReader, MemoryStore, UtxoReader, UtxoStats};
use crate::testkit::{SpendWorkload, TestChain, store_conformance};
use proptest::prelude::*;

type Cached = ChainState<CoinCache<MemoryStore>>;

fn cached(params: &ChainParams, budget: usize) -> Cached {
    ChainState::open(params.clone(), CoinCache::new(MemoryStore::new(), budget)).unwrap()
}

/// What a crash leaves: the inner store without the cache, opened again.
fn crash_and_reopen(chain: Cached, budget: usize) -> Cached {
    let params = chain.params().clone();
    let inner = chain.into_store().into_inner_unflushed();
    ChainState::open(params, CoinCache::new(inner, budget)).expect("reopen after a crash")
}

#[test]
fn a_coin_cache_conforms_at_every_budget() {
    for budget in [0, 1, 4096, 64 * MIB] {
        store_conformance::run(|| CoinCache::new(MemoryStore::new(), budget));
    }
}

#[test]
fn coins_created_and_spent_between_flushes_never_reach_the_inner_store() {
    let params = ChainParams::regtest();
    let mut work = SpendWorkload::new(params.clone(), 2, 1_000);
    work.add_blocks(8, 4);
    let mut chain = cached(&params, 64 * MIB);
    let genesis_writes = chain.store().inner().writes;
    let genesis_coins: Vec<_> = chain.store().inner().coins().keys().copied().collect();
    for block in &work.blocks {
        chain
            .accept_block(block.clone(), work.builder.now())
            .unwrap();
    }
    let inner = chain.store().inner();
    assert_eq!(
        inner.writes - genesis_writes,
        work.blocks.len() as u64,
        "one write of block data per block, no coins"
    );
    assert_eq!(
        inner.tip().unwrap(),
        Some(params.genesis_hash),
        "the stored tip waits for the flush"
    );
    let expected = work.builder.chain.utxo_stats().unwrap();
    assert_eq!(chain.utxo_stats().unwrap(), expected, "reads see the cache");

    chain.flush_coins().unwrap();
    let inner = chain.store().inner();
    assert_eq!(UtxoStats::compute(inner).unwrap(), expected);
    let coins = inner.coins();
    assert_eq!(inner.tip().unwrap(), Some(work.builder.chain.tip().hash));
    // Only the survivors were written: the set a replay gives, nothing spent on the way.
    assert_eq!(coins.len() as u64, expected.txouts);
    let g = genesis_coins.len() as u64;
    let kept = genesis_coins
        .iter()
        .filter(|o| coins.contains_key(o))
        .count() as u64;
    assert_eq!(
        chain.store().coin_writes(),
        g + (g - kept) + (expected.txouts - kept),
        "genesis written through; at the flush, its spent coins deleted and the survivors put"
    );
    assert!(chain.store().is_flushed());
}

#[test]
fn a_crash_before_the_flush_resumes_at_the_acknowledged_tip() {
    let params = ChainParams::regtest();
    let mut work = SpendWorkload::new(params.clone(), 2, 1_000);
    work.add_blocks(6, 4);
    let mut chain = cached(&params, 64 * MIB);
    for block in &work.blocks[..3] {
        chain
            .accept_block(block.clone(), work.builder.now())
            .unwrap();
    }
    chain.flush_coins().unwrap();
    for block in &work.blocks[3..] {
        chain
            .accept_block(block.clone(), work.builder.now())
            .unwrap();
    }
    let tip = chain.tip().hash;
    let stats = chain.utxo_stats().unwrap();
    let reopened = crash_and_reopen(chain, 64 * MIB);
    assert_eq!(reopened.tip().hash, tip);
    assert_eq!(reopened.utxo_stats().unwrap(), stats);
}

/// The stored tip's branch lost a reorg whose disconnections never reached the disk: its
/// undo data must still be there to disconnect it again.
#[test]
fn a_crash_after_an_unflushed_reorg_disconnects_the_stored_branch_again() {
    let params = ChainParams::regtest();
    let mut work = SpendWorkload::new(params.clone(), 2, 1_000);
    work.add_blocks(4, 4);
    let mut chain = cached(&params, 64 * MIB);
    for block in &work.blocks {
        chain
            .accept_block(block.clone(), work.builder.now())
            .unwrap();
    }
    chain.flush_coins().unwrap();
    // A heavier branch from below the spends.
    let mut rival = TestChain::new(params.clone());
    rival
        .chain
        .accept_block(work.blocks[0].clone(), rival.now())
        .unwrap();
    let fork = work.blocks[0].block_hash();
    for block in rival.build_on(&fork, work.blocks.len()) {
        chain.accept_block(block, rival.now()).unwrap();
    }
    assert_eq!(chain.tip().hash, rival.chain.tip().hash, "the rival won");
    let stats = chain.utxo_stats().unwrap();
    assert_eq!(stats, rival.chain.utxo_stats().unwrap());

    let reopened = crash_and_reopen(chain, 64 * MIB);
    assert_eq!(reopened.tip().hash, rival.chain.tip().hash);
    assert_eq!(reopened.utxo_stats().unwrap(), stats);
}

#[test]
fn an_invalidated_tip_whose_disconnection_was_not_flushed_stays_invalid_after_a_crash() {
    let params = ChainParams::regtest();
    let mut kit = TestChain::new(params.clone());
    let blocks = kit.build_chain(3);
    let mut chain = cached(&params, 64 * MIB);
    for block in &blocks {
        chain.accept_block(block.clone(), kit.now()).unwrap();
    }
    chain.flush_coins().unwrap();
    let bad = blocks[2].block_hash();
    chain.invalidate_block(&bad).unwrap();
    let parent = blocks[1].block_hash();
    assert_eq!(chain.tip().hash, parent);
    let stats = chain.utxo_stats().unwrap();
    let reopened = crash_and_reopen(chain, 64 * MIB);
    assert_eq!(reopened.tip().hash, parent);
    assert_eq!(reopened.utxo_stats().unwrap(), stats);
}

#[test]
fn a_store_being_created_gets_its_genesis_tip_at_once() {
    let params = ChainParams::regtest();
    let chain = cached(&params, 64 * MIB);
    assert_eq!(
        chain.store().inner().tip().unwrap(),
        Some(params.genesis_hash)
    );
    let reopened = crash_and_reopen(chain, 64 * MIB);
    assert_eq!(reopened.tip().hash, params.genesis_hash);
}

#[test]
fn a_small_budget_flushes_on_its_own_and_stays_bounded() {
    let params = ChainParams::regtest();
    let mut work = SpendWorkload::new(params.clone(), 8, 1_000);
    work.add_blocks(10, 8);
    let budget = 2048;
    let mut chain = cached(&params, budget);
    let mut peak = 0;
    for block in &work.blocks {
        chain
            .accept_block(block.clone(), work.builder.now())
            .unwrap();
        peak = peak.max(chain.store().usage_bytes());
    }
    assert!(chain.store().flushes() >= 2, "the budget forced flushes");
    // Over budget by at most one block's changes (a flush comes before the next batch).
    assert!(
        peak < budget * 8,
        "peak {peak} bytes against a {budget}-byte budget"
    );
    assert_eq!(
        chain.utxo_stats().unwrap(),
        work.builder.chain.utxo_stats().unwrap()
    );
}

/// What the model test does next.
#[derive(Debug, Clone)]
enum Step {
    /// Feed the next `n` blocks of the spend chain.
    Main(usize),
    /// Build a branch of empty blocks `back` below the spend chain's fed tip, one longer.
    Fork {
        back: usize,
    },
    Flush,
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..4).prop_map(Step::Main),
        2 => (0usize..4).prop_map(|back| Step::Fork { back }),
        1 => Just(Step::Flush),
        2 => Just(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the budget and wherever flushes and crashes fall, a chain over the cache
    /// has the tip and UTXO set of a chain over the memory store fed the same blocks, and
    /// so has the one reopened after a crash.
    #[test]
    fn the_cache_matches_the_memory_store_through_reorgs_flushes_and_crashes(
        budget in prop_oneof![Just(1usize), Just(4096), Just(64 * MIB)],
        steps in proptest::collection::vec(step(), 1..14),
    ) {
        let params = ChainParams::regtest();
        let mut work = SpendWorkload::new(params.clone(), 2, 1_000);
        work.add_blocks(16, 4);
        let now = work.builder.now() + 10_000;
        let mut forks = TestChain::new(params.clone());
        forks.clock = now;
        for block in &work.blocks {
            forks.chain.accept_block(block.clone(), now).unwrap();
        }
        let mut chain = cached(&params, budget);
        let mut reference = ChainState::open(params.clone(), MemoryStore::new()).unwrap();
        let mut fed = 0;
        for step in steps {
            let blocks: Vec<Block> = match step {
                Step::Main(n) => {
                    let end = (fed + n).min(work.blocks.len());
                    let out = work.blocks[fed..end].to_vec();
                    fed = end;
                    out
                }
                Step::Fork { back } => {
                    let base: BlockHash = match fed.checked_sub(back + 1) {
                        Some(i) => work.blocks[i].block_hash(),
                        None => params.genesis_hash,
                    };
                    forks.build_on(&base, back + 1)
                }
                Step::Flush => {
                    chain.flush_coins().unwrap();
                    let inner = chain.store().inner();
                    prop_assert_eq!(inner.tip().unwrap(), Some(chain.tip().hash));
                    prop_assert_eq!(
                        UtxoStats::compute(inner).unwrap(),
                        reference.utxo_stats().unwrap()
                    );
                    Vec::new()
                }
                Step::Crash => {
                    chain = crash_and_reopen(chain, budget);
                    Vec::new()
                }
            };
            for block in blocks {
                chain.accept_block(block.clone(), now).unwrap();
                reference.accept_block(block, now).unwrap();
            }
            prop_assert_eq!(chain.tip().hash, reference.tip().hash);
            prop_assert_eq!(chain.utxo_stats().unwrap(), reference.utxo_stats().unwrap());
            for (outpoint, coin) in reference.store().coins() {
                prop_assert_eq!(chain.store().coin(&outpoint).unwrap(), Some(coin));
            }
        }
    }
}
