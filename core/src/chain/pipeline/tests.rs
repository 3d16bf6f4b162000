use super::*;
use crate::amount::Amount;
use crate::chain::ImportOutcome;
use crate::store::MemoryStore;
use crate::testkit::{SpendWorkload, mine};
use proptest::prelude::*;
use std::sync::OnceLock;

/// A chain of full-ish blocks of signed spends (a fan-out block, then `BLOCKS` blocks).
const BLOCKS: usize = 6;

fn workload() -> &'static (ChainParams, Vec<Block>, u64) {
    static WORK: OnceLock<(ChainParams, Vec<Block>, u64)> = OnceLock::new();
    WORK.get_or_init(|| {
        let params = ChainParams::regtest();
        let accounts = params.config.dev_accounts.len().max(1);
        let mut work = SpendWorkload::new(params.clone(), 80usize.div_ceil(accounts), 1000);
        work.add_blocks(BLOCKS, 70);
        let now = work.builder.now();
        (params, std::mem::take(&mut work.blocks), now)
    })
}

fn fresh(params: &ChainParams) -> ChainState<MemoryStore> {
    ChainState::open(params.clone(), MemoryStore::new()).expect("the memory store cannot fail")
}

/// The workload's blocks with the one at `at` broken as `flaw` says (and re-mined).
fn broken(flaw: u8, at: usize) -> Vec<Block> {
    let (params, blocks, _) = workload();
    let mut blocks = blocks.clone();
    let block = &mut blocks[at];
    match flaw {
        // Context-free: the merkle root no longer matches (not re-sealed).
        0 => block.txs[1].outputs[0].amount = Amount::from_base(1),
        // Context-free and sealed: a transaction spending one coin twice.
        1 => {
            let input = block.txs[1].inputs[0].clone();
            block.txs[1].inputs.push(input);
            block.header.merkle_root = block.compute_merkle_root();
        }
        // Contextual: a signature that does not verify.
        _ => {
            block.txs[2].inputs[0].signature[10] ^= 1;
            block.header.merkle_root = block.compute_merkle_root();
        }
    }
    *block = mine(block.clone(), params);
    blocks
}

/// Every block imported one by one with `accept_block`, and through the pipeline: the same
/// report for each block, the same tip and UTXO set at the end.
fn assert_pipeline_matches_accept_block(blocks: &[Block]) {
    let (params, _, now) = workload();
    let mut one_by_one = fresh(params);
    let expected: Vec<ImportReport> = blocks
        .iter()
        .map(|b| one_by_one.accept_block(b.clone(), *now).unwrap())
        .collect();
    let mut pipelined = fresh(params);
    let mut got = Vec::new();
    let stopped: Option<()> = import_in_order(params, blocks.to_vec(), |pre| {
        got.push(pipelined.accept_prechecked(pre, *now).unwrap());
        ControlFlow::Continue(())
    });
    assert_eq!(stopped, None);
    assert_eq!(got, expected);
    assert_eq!(pipelined.tip(), one_by_one.tip());
    assert_eq!(pipelined.store().coins(), one_by_one.store().coins());
}

#[test]
fn a_valid_chain_imports_through_the_pipeline_as_through_accept_block() {
    let (_, blocks, _) = workload();
    assert_pipeline_matches_accept_block(blocks);
    assert!(blocks.len() > BLOCKS, "the fan-out block comes first");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// A broken block anywhere in the batch, context-free or not: the same verdicts (the
    /// broken block, and every later one as an orphan or descendant of an invalid block).
    #[test]
    fn a_broken_block_gets_the_same_verdicts_through_the_pipeline(
        flaw in 0u8..3,
        at in 1usize..=BLOCKS,
    ) {
        assert_pipeline_matches_accept_block(&broken(flaw, at));
    }
}

#[test]
fn breaking_off_returns_the_value_and_imports_nothing_more() {
    let (params, blocks, now) = workload();
    let mut chain = fresh(params);
    let mut seen = Vec::new();
    let stopped = import_in_order(params, blocks.clone(), |pre| {
        seen.push(pre.hash());
        let report = chain.accept_prechecked(pre, *now).unwrap();
        if seen.len() == 2 {
            ControlFlow::Break(report.outcome)
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(stopped, Some(ImportOutcome::Active));
    assert_eq!(seen, vec![blocks[0].block_hash(), blocks[1].block_hash()]);
    assert_eq!(chain.height(), 2);
}

#[test]
fn a_prechecked_block_keeps_its_header_and_sizes_whatever_the_verdict() {
    let (params, blocks, _) = workload();
    let good = Prechecked::new(blocks[1].clone(), params);
    assert_eq!(good.hash(), blocks[1].block_hash());
    assert_eq!(good.header(), &blocks[1].header);
    assert_eq!(good.txs(), blocks[1].txs.len());
    assert_eq!(good.size(), blocks[1].encoded_size());
    assert_eq!(good.block(), Some(&blocks[1]));
    let bad = broken(0, 1).swap_remove(1);
    let pre = Prechecked::new(bad.clone(), params);
    assert_eq!((pre.hash(), pre.txs()), (bad.block_hash(), bad.txs.len()));
    assert_eq!(pre.block(), None);
    assert!(matches!(
        pre.into_checked(),
        Err(BlockError::BadMerkleRoot { .. })
    ));
}
