//! The parallel verdict is the sequential one; the signature cache only spares work; a
//! stored and connected block is one store write.

use crate::amount::Amount;
use crate::block::Block;
use crate::chain::{ChainState, ImportOutcome};
use crate::merkle::merkle_root;
use crate::params::{ChainParams, dev_secret_key};
use crate::sigcache::SigCache;
use crate::sigcheck::{CHUNK_CHECKS, Parallelism};
use crate::store::MemoryStore;
use crate::testkit::{SpendWorkload, mine};
use crate::tx::{OutPoint, Transaction};
use crate::utxo::Coin;
use crate::validation::{BlockError, verify_tx_signatures};
use k256::ecdsa::Signature;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// Spends in the block under test (one check each): above
/// [`crate::sigcheck::PARALLEL_MIN_CHECKS`], below [`CHUNK_CHECKS`].
const SPENDS: usize = 40;

/// Checks per job the tests connect with: one check, jobs ending inside and at the end of
/// the block, one job of exactly the block, one larger than the block, the default.
const CHUNKS: [usize; 7] = [1, 7, 8, SPENDS - 1, SPENDS, SPENDS + 1, CHUNK_CHECKS];

/// A fan-out block, then an unmined block of [`SPENDS`] valid one-input spends on it.
struct Fixture {
    params: ChainParams,
    parents: Vec<Block>,
    block: Block,
    now: u64,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut work = SpendWorkload::new(ChainParams::regtest(), SPENDS / 10, 1000);
        let txs = work.spends(SPENDS);
        let fees = Amount::from_base(1000 * SPENDS as u64);
        let now = work.builder.now() + 600;
        let pay_to = dev_secret_key(0).pubkey_hash();
        let block =
            work.builder
                .chain
                .block_template(pay_to, txs, fees, now, b"under test".to_vec());
        Fixture {
            params: work.builder.params().clone(),
            parents: work.blocks.clone(),
            block,
            now: now + 1,
        }
    })
}

/// A chain at the fixture's parent tip.
fn parent_chain(parallelism: Parallelism) -> ChainState<MemoryStore> {
    chunked_parent_chain(parallelism, CHUNK_CHECKS)
}

/// A chain at the fixture's parent tip that hands `chunk` checks to the pool per job.
fn chunked_parent_chain(parallelism: Parallelism, chunk: usize) -> ChainState<MemoryStore> {
    let f = fixture();
    let mut chain = ChainState::open(f.params.clone(), MemoryStore::new()).unwrap();
    chain.set_parallelism(parallelism);
    chain.set_check_chunk(chunk);
    for block in &f.parents {
        let report = chain.accept_block(block.clone(), f.now).unwrap();
        assert_eq!(report.outcome, ImportOutcome::Active);
    }
    chain
}

/// The fixture's block with `mutate` applied to its transactions, re-rooted and mined.
fn mutated(mutate: impl FnOnce(&mut [Transaction])) -> Block {
    let f = fixture();
    let mut block = f.block.clone();
    mutate(&mut block.txs[1..]);
    let wtxids: Vec<_> = block.txs.iter().map(Transaction::wtxid).collect();
    block.header.merkle_root = merkle_root(&wtxids);
    mine(block, &f.params)
}

/// The verdict of the code before parallel verification: transaction by transaction,
/// coins then signatures (every spend here spends a confirmed coin).
fn sequential_reference(chain: &ChainState<MemoryStore>, block: &Block) -> Option<BlockError> {
    for (index, tx) in block.txs.iter().enumerate().skip(1) {
        let coins: Vec<Coin> = tx
            .inputs
            .iter()
            .map(|i| chain.coin(&i.prevout).unwrap().expect("confirmed coin"))
            .collect();
        if let Err(error) = verify_tx_signatures(tx, &coins, chain.params()) {
            return Some(BlockError::Tx {
                index,
                txid: tx.txid(),
                error,
            });
        }
    }
    None
}

fn outcome(parallelism: Parallelism, block: &Block) -> ImportOutcome {
    chunked_outcome(parallelism, CHUNK_CHECKS, block)
}

fn chunked_outcome(parallelism: Parallelism, chunk: usize, block: &Block) -> ImportOutcome {
    let mut chain = chunked_parent_chain(parallelism, chunk);
    chain
        .accept_block(block.clone(), fixture().now)
        .unwrap()
        .outcome
}

/// Breaks the only input of `tx`: 0 a flipped signature byte, 1 the high-S twin, 2 another
/// key.
fn corrupt(tx: &mut Transaction, kind: u8, byte: usize) {
    let input = &mut tx.inputs[0];
    match kind {
        0 => input.signature[32 + byte % 32] ^= 0x01,
        1 => {
            let sig = Signature::from_slice(&input.signature).unwrap();
            let high = Signature::from_scalars(sig.r().to_bytes(), (-*sig.s()).to_bytes()).unwrap();
            input.signature.copy_from_slice(&high.to_bytes());
        }
        _ => input.public_key = dev_secret_key(11).public_key(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn parallel_and_sequential_verification_reach_the_same_verdict(
        bad in proptest::collection::btree_map(0..SPENDS, (0u8..3, 0usize..32), 1..3),
        chunk in proptest::sample::select(CHUNKS.to_vec()),
    ) {
        let block = mutated(|txs| {
            for (&i, &(kind, byte)) in &bad {
                corrupt(&mut txs[i], kind, byte);
            }
        });
        let expected = sequential_reference(&parent_chain(Parallelism::Sequential), &block)
            .expect("a corrupted input fails");
        let first_bad = *bad.keys().next().unwrap() + 1;
        let reported = match &expected {
            BlockError::Tx { index, .. } => *index,
            _ => 0,
        };
        prop_assert_eq!(reported, first_bad);
        let expected = ImportOutcome::Invalid(expected);
        prop_assert_eq!(outcome(Parallelism::Sequential, &block), expected.clone());
        prop_assert_eq!(chunked_outcome(Parallelism::Auto, chunk, &block), expected);
    }
}

#[test]
fn a_bad_signature_in_the_first_or_last_job_is_the_verdict() {
    for bad in [vec![0], vec![SPENDS - 1], vec![0, SPENDS - 1], vec![7, 8]] {
        let block = mutated(|txs| bad.iter().for_each(|&i| corrupt(&mut txs[i], 0, i)));
        let expected = sequential_reference(&parent_chain(Parallelism::Sequential), &block)
            .expect("a corrupted input fails");
        for chunk in CHUNKS {
            assert_eq!(
                chunked_outcome(Parallelism::Auto, chunk, &block),
                ImportOutcome::Invalid(expected.clone()),
                "bad {bad:?}, chunk {chunk}"
            );
        }
    }
}

#[test]
fn the_valid_block_connects_either_way() {
    let block = mutated(|_| {});
    assert_eq!(outcome(Parallelism::Auto, &block), ImportOutcome::Active);
    assert_eq!(
        outcome(Parallelism::Sequential, &block),
        ImportOutcome::Active
    );
}

/// With jobs of 1, 7 or 8 checks the bad signature was handed to the pool in an earlier job
/// than the one the pass was filling when it met the missing input.
#[test]
fn an_earlier_bad_signature_beats_a_later_missing_input_and_vice_versa() {
    let missing = OutPoint::default();
    let sig_then_missing = mutated(|txs| {
        corrupt(&mut txs[4], 0, 0);
        txs[9].inputs[0].prevout = missing;
    });
    let missing_then_sig = mutated(|txs| {
        txs[4].inputs[0].prevout = missing;
        corrupt(&mut txs[9], 0, 0);
    });
    let runs = CHUNKS
        .map(|chunk| (Parallelism::Auto, chunk))
        .into_iter()
        .chain([(Parallelism::Sequential, CHUNK_CHECKS)]);
    for (parallelism, chunk) in runs {
        let ImportOutcome::Invalid(BlockError::Tx { index, error, .. }) =
            chunked_outcome(parallelism, chunk, &sig_then_missing)
        else {
            panic!("invalid block accepted");
        };
        assert_eq!(index, 5);
        assert_eq!(error.reject_reason(), "mandatory-script-verify-flag-failed");
        let ImportOutcome::Invalid(BlockError::Tx { index, error, .. }) =
            chunked_outcome(parallelism, chunk, &missing_then_sig)
        else {
            panic!("invalid block accepted");
        };
        assert_eq!(index, 5);
        assert_eq!(error, crate::validation::TxError::MissingOrSpent(missing));
    }
}

/// Fills `cache` as the mempool would, with every signature of `block`.
fn warm(cache: &SigCache, chain: &ChainState<MemoryStore>, block: &Block) {
    for tx in &block.txs[1..] {
        let coins: Vec<Coin> = tx
            .inputs
            .iter()
            .map(|i| chain.coin(&i.prevout).unwrap().unwrap())
            .collect();
        crate::sigcheck::verify_tx_signatures_cached(tx, &coins, chain.params(), cache).unwrap();
    }
}

#[test]
fn a_warm_cache_connects_the_block_and_is_emptied_by_it() {
    let block = mutated(|_| {});
    for chunk in [7, CHUNK_CHECKS] {
        let mut chain = chunked_parent_chain(Parallelism::Auto, chunk);
        let cache = Arc::new(SigCache::new([3; 32], 10_000));
        warm(&cache, &chain, &block);
        assert_eq!(cache.len(), SPENDS);
        chain.set_sigcache(cache.clone());
        let report = chain.accept_block(block.clone(), fixture().now).unwrap();
        assert_eq!(report.outcome, ImportOutcome::Active);
        assert!(cache.is_empty(), "connection takes what it used");
    }
}

#[test]
fn cached_signatures_do_not_vouch_for_another_sighash() {
    // Txs 0 and 1 of the spends are both dev account 0's: swapping their signatures gives
    // each a signature by the right key, cached, but over the other transaction's sighash.
    let valid = mutated(|_| {});
    let chain = parent_chain(Parallelism::Auto);
    let cache = Arc::new(SigCache::new([4; 32], 10_000));
    warm(&cache, &chain, &valid);
    let swapped = mutated(|txs| {
        let (a, b) = (txs[0].inputs[0].signature, txs[1].inputs[0].signature);
        txs[0].inputs[0].signature = b;
        txs[1].inputs[0].signature = a;
    });
    assert_eq!(
        swapped.txs[1].inputs[0].public_key,
        swapped.txs[2].inputs[0].public_key
    );
    let expected = sequential_reference(&chain, &swapped).expect("swapped signatures fail");
    for chunk in [1, CHUNK_CHECKS] {
        let mut chain = chunked_parent_chain(Parallelism::Auto, chunk);
        warm(&cache, &chain, &valid);
        chain.set_sigcache(cache.clone());
        let report = chain.accept_block(swapped.clone(), fixture().now).unwrap();
        assert_eq!(report.outcome, ImportOutcome::Invalid(expected.clone()));
    }
}

#[test]
fn a_block_stored_and_connected_in_one_import_is_one_store_write() {
    let mut chain = parent_chain(Parallelism::Auto);
    let before = chain.store().writes;
    let block = mutated(|_| {});
    let report = chain.accept_block(block.clone(), fixture().now).unwrap();
    assert_eq!(report.outcome, ImportOutcome::Active);
    assert_eq!(chain.store().writes, before + 1);
    // And what that one write holds is all of it: a reopened chain resumes at the block.
    let stats = chain.utxo_stats().unwrap();
    let reopened = ChainState::open(fixture().params.clone(), chain.into_store()).unwrap();
    assert_eq!(reopened.tip().hash, block.block_hash());
    assert_eq!(reopened.utxo_stats().unwrap(), stats);
    assert!(reopened.block(&block.block_hash()).unwrap().is_some());
}

#[test]
fn an_invalid_block_is_stored_and_marked_in_one_write() {
    let mut chain = parent_chain(Parallelism::Auto);
    let before = chain.store().writes;
    let block = mutated(|txs| corrupt(&mut txs[7], 0, 3));
    let report = chain.accept_block(block, fixture().now).unwrap();
    assert!(matches!(report.outcome, ImportOutcome::Invalid(_)));
    assert_eq!(chain.store().writes, before + 1);
}
