//! Reorganisations, `invalidateblock`/`reconsiderblock`, `getchaintips`, headers-first
//! sync and equal-work ties. After every move the UTXO set is compared with a fresh replay
//! of the active chain.

use crate::support::*;
use cairn_core::chain::{BlockEntry, ChainError, HashedBlock, HeaderOutcome, TipStatus, Validity};
use cairn_core::store::{
    BlockReader, BlockUndo, ChainWriter, MemoryStore, StoreBatch, StoreError, UtxoReader,
};
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{Amount, Block, BlockError, BlockHash, ChainState, Coin, ImportOutcome, OutPoint};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

/// Coins a branch may spend, with the dev account that owns each.
type Wallet = VecDeque<((OutPoint, Coin), u32)>;

/// Builds `n` blocks on `parent` (at height `height` for the first). Each block spends the
/// first mature coin of `wallet` (every fourth block two coins) into two outputs paying
/// `fee`, and its coinbase joins the wallet.
fn branch(
    kit: &mut TestChain,
    parent: &BlockHash,
    mut height: u32,
    n: usize,
    wallet: &mut Wallet,
    fee: u64,
) -> Vec<Block> {
    let maturity = kit.params().coinbase_maturity;
    let mut parent = *parent;
    let mut blocks = Vec::with_capacity(n);
    for i in 0..n {
        let mut txs = Vec::new();
        for _ in 0..if i % 4 == 3 { 2 } else { 1 } {
            let mature = wallet
                .iter()
                .position(|((_, c), _)| !c.is_coinbase || height - c.height >= maturity);
            let Some(pos) = mature else { break };
            let (coin, key) = wallet.remove(pos).expect("position is in range");
            let rest = coin.1.output.amount.to_base() - fee;
            let tx = pay(kit, &coin, key, &[rest / 2, rest - rest / 2]);
            wallet.push_back((coin_of(&tx, 0, height, false), key));
            wallet.push_back((coin_of(&tx, 1, height, false), key));
            txs.push(tx);
        }
        let fees = Amount::from_base(fee * txs.len() as u64);
        let block = kit.block_on(&parent, txs, fees);
        wallet.push_back((coinbase_coin(&block, height), 0));
        parent = block.block_hash();
        height += 1;
        blocks.push(block);
    }
    blocks
}

fn rev(mut hashes: Vec<BlockHash>) -> Vec<BlockHash> {
    hashes.reverse();
    hashes
}

#[test]
fn deep_reorg_to_a_heavier_branch_and_back_matches_a_fresh_replay() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let prefix = kit.build_chain(12);
    let fork = prefix[11].block_hash();
    // Both branches first spend genesis coin 1 and the (mature) coinbase of block 1, in
    // different transactions: every later spend on one branch conflicts with the other.
    let shared: Wallet = [(kit.genesis_coin(1), 1), (coinbase_coin(&prefix[0], 1), 0)].into();
    let mut wallet_a = shared.clone();
    let a = branch(&mut kit, &fork, 13, 50, &mut wallet_a, 10_000);
    let mut wallet_b = shared;
    wallet_b.push_back((kit.genesis_coin(2), 2));
    let b = branch(&mut kit, &fork, 13, 51, &mut wallet_b, 20_000);
    assert!(non_coinbase_txs(&a).len() > 50 && non_coinbase_txs(&b).len() > 50);
    assert_ne!(a[0].txs[1].txid(), b[0].txs[1].txid());
    assert_eq!(a[0].txs[1].inputs[0].prevout, b[0].txs[1].inputs[0].prevout);

    let now = kit.now();
    let mut node = fresh_node(&params);
    for block in prefix.iter().chain(&a) {
        accept_active(&mut node, block, now);
    }
    assert_utxo_matches_replay(&node, now);
    let a_tip = a[49].block_hash();
    for block in &b[..50] {
        let report = accept(&mut node, block, now);
        assert_eq!(report.outcome, ImportOutcome::SideChain);
        assert_eq!(report.tip_changed, None);
    }
    assert_eq!(
        node.tip().hash,
        a_tip,
        "equal work: the first seen branch stays"
    );

    let report = accept(&mut node, &b[50], now);
    assert_eq!(report.outcome, ImportOutcome::Active);
    let changed = report.tip_changed.expect("reorganised");
    assert_eq!(changed.reorg_depth(), 50);
    assert_eq!(changed.reverted_hashes(), rev(hashes(&a)));
    assert_eq!(changed.connected_hashes(), hashes(&b));
    assert_eq!(changed.returned_txs, non_coinbase_txs(&a));
    assert_utxo_matches_replay(&node, now);
    // The newest outputs of each branch are still unspent on their own branch.
    let a_only = coin_of(&a[49].txs[1], 0, 62, false).0;
    let b_only = coin_of(&b[50].txs[1], 0, 63, false).0;
    assert_eq!(node.coin(&a_only).expect("memory store"), None);
    assert!(node.coin(&b_only).expect("memory store").is_some());

    // Back: branch A grows past B.
    let a_more = branch(&mut kit, &a_tip, 63, 2, &mut wallet_a, 10_000);
    let now = kit.now();
    assert_eq!(
        accept(&mut node, &a_more[0], now).outcome,
        ImportOutcome::SideChain,
        "equal work again: B, now active, stays"
    );
    let report = accept(&mut node, &a_more[1], now);
    assert_eq!(report.outcome, ImportOutcome::Active);
    let changed = report.tip_changed.expect("reorganised back");
    assert_eq!(changed.reverted_hashes(), rev(hashes(&b)));
    let mut a_all = a.clone();
    a_all.extend(a_more);
    assert_eq!(changed.connected_hashes(), hashes(&a_all));
    assert_eq!(changed.returned_txs, non_coinbase_txs(&b));
    assert_utxo_matches_replay(&node, now);
    assert!(node.coin(&a_only).expect("memory store").is_some());
    assert_eq!(node.coin(&b_only).expect("memory store"), None);
}

#[test]
fn reorg_onto_a_branch_with_an_invalid_block_falls_back_to_the_original_chain() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let prefix = kit.build_chain(2);
    let fork = prefix[1].block_hash();
    // Branch B: b1 (valid, spends genesis coin 1), b2 (wrong BIP34 height), b3.
    let mut wallet_b: Wallet = [(kit.genesis_coin(1), 1)].into();
    let b1 = branch(&mut kit, &fork, 3, 1, &mut wallet_b, 20_000).remove(0);
    let mut b2 = template(&mut kit, &b1.block_hash(), vec![], Amount::ZERO);
    b2.txs[0].lock_height = 99;
    let b2 = reseal(b2, &params);
    assert!(matches!(
        reject_in(&mut kit, &b2),
        BlockError::BadCoinbaseHeight { .. }
    ));
    let b3 = mine(
        template(&mut kit, &b2.block_hash(), vec![], Amount::ZERO),
        &params,
    );
    // Branch A: two valid blocks spending genesis coin 1 differently.
    let mut wallet_a: Wallet = [(kit.genesis_coin(1), 1)].into();
    let a = branch(&mut kit, &fork, 3, 2, &mut wallet_a, 10_000);

    let now = kit.now();
    let mut node = fresh_node(&params);
    for block in prefix.iter().chain(&a) {
        accept_active(&mut node, block, now);
    }
    let before = node.store().coins();
    assert_eq!(
        accept(&mut node, &b1, now).outcome,
        ImportOutcome::SideChain
    );
    assert_eq!(
        accept(&mut node, &b2, now).outcome,
        ImportOutcome::SideChain
    );
    let report = accept(&mut node, &b3, now);
    assert_eq!(
        report.outcome,
        ImportOutcome::Invalid(BlockError::InvalidAncestor(b2.block_hash()))
    );
    assert_eq!(report.tip_changed, None, "went to b1 and came back");
    assert_eq!(report.invalidated.len(), 1);
    assert_eq!(report.invalidated[0].0, b2.block_hash());
    assert!(matches!(
        report.invalidated[0].1,
        BlockError::BadCoinbaseHeight { .. }
    ));
    assert_eq!(node.tip().hash, a[1].block_hash());
    assert_eq!(node.store().coins(), before);
    assert_utxo_matches_replay(&node, now);
}

#[test]
fn equal_work_competitor_does_not_replace_the_first_seen_tip() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let prefix = kit.build_chain(2);
    let fork = prefix[1].block_hash();
    let x = kit.block_on(&fork, vec![], Amount::ZERO);
    let y = kit.block_on(&fork, vec![], Amount::ZERO);
    let now = kit.now();
    for (first, second) in [(&x, &y), (&y, &x)] {
        let mut node = fresh_node(&params);
        for block in &prefix {
            accept_active(&mut node, block, now);
        }
        accept_active(&mut node, first, now);
        let report = accept(&mut node, second, now);
        assert_eq!(report.outcome, ImportOutcome::SideChain);
        assert_eq!(report.tip_changed, None);
        assert_eq!(node.tip().hash, first.block_hash(), "first seen wins");
    }
    // More work still wins: a child of the second-seen block takes over.
    let y_child = kit.block_on(&y.block_hash(), vec![], Amount::ZERO);
    let mut node = replay(
        &params,
        &[prefix[0].clone(), prefix[1].clone(), x.clone()],
        now,
    );
    accept(&mut node, &y, now);
    let report = accept(&mut node, &y_child, now);
    let changed = report.tip_changed.expect("reorganised");
    assert_eq!(changed.reverted_hashes(), vec![x.block_hash()]);
    assert_eq!(
        changed.connected_hashes(),
        vec![y.block_hash(), y_child.block_hash()]
    );
}

#[test]
fn invalidating_an_ancestor_of_the_tip_moves_to_the_best_other_chain_and_reconsider_restores_it() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let h1 = kit.build_chain(1).remove(0);
    let mut wallet: Wallet = [(kit.genesis_coin(1), 1), (kit.genesis_coin(2), 2)].into();
    let main = branch(&mut kit, &h1.block_hash(), 2, 5, &mut wallet, 10_000); // heights 2..=6
    // `side` spends the output of main[0] that main[2] spends too.
    let mut wallet: Wallet = [(coin_of(&main[0].txs[1], 0, 2, false), 1)].into();
    let side = branch(&mut kit, &main[0].block_hash(), 3, 2, &mut wallet, 20_000); // 3..=4
    assert_eq!(
        side[0].txs[1].inputs[0].prevout,
        main[2].txs[1].inputs[0].prevout
    );
    let mut wallet: Wallet = [(kit.genesis_coin(2), 2)].into();
    let other = branch(&mut kit, &h1.block_hash(), 2, 4, &mut wallet, 30_000); // 2..=5

    let now = kit.now();
    let mut node = fresh_node(&params);
    accept_active(&mut node, &h1, now);
    for block in &main {
        accept_active(&mut node, block, now);
    }
    for block in side.iter().chain(&other) {
        assert_eq!(
            accept(&mut node, block, now).outcome,
            ImportOutcome::SideChain
        );
    }

    // Invalidate main[2] (height 4): the best remaining chain is `other` (height 5), not
    // main[1] (height 3) nor `side` (height 4).
    let bad = main[2].block_hash();
    let changed = node
        .invalidate_block(&bad)
        .expect("memory store")
        .expect("the tip moved");
    assert_eq!(node.tip().hash, other[3].block_hash());
    assert_eq!(changed.reverted_hashes(), rev(hashes(&main)));
    assert_eq!(changed.connected_hashes(), hashes(&other));
    assert_eq!(changed.returned_txs, non_coinbase_txs(&main));
    assert_utxo_matches_replay(&node, now);
    assert_eq!(
        node.entry(&bad).expect("known").validity,
        Validity::Invalid {
            reason: "invalidated by invalidateblock".into()
        }
    );
    for later in &main[3..] {
        assert_eq!(
            node.entry(&later.block_hash()).expect("known").validity,
            Validity::InvalidAncestor(bad)
        );
    }
    assert_eq!(
        rejection(&mut node, &main[4], now),
        BlockError::KnownInvalid(main[4].block_hash())
    );

    let changed = node
        .reconsider_block(&bad)
        .expect("memory store")
        .expect("the tip moved back");
    assert_eq!(node.tip().hash, main[4].block_hash());
    assert_eq!(changed.reverted_hashes(), rev(hashes(&other)));
    assert_eq!(changed.connected_hashes(), hashes(&main));
    assert_eq!(changed.returned_txs, non_coinbase_txs(&other));
    assert_utxo_matches_replay(&node, now);
    assert!(!node.entry(&bad).expect("known").validity.is_invalid());

    // Invalidating a block off the active chain changes nothing active.
    assert_eq!(
        node.invalidate_block(&side[0].block_hash())
            .expect("memory store"),
        None
    );
    assert_eq!(node.tip().hash, main[4].block_hash());
    assert!(matches!(
        node.invalidate_block(&params.genesis_hash),
        Err(ChainError::Genesis)
    ));
    assert!(matches!(
        node.invalidate_block(&BlockHash::ZERO),
        Err(ChainError::UnknownBlock(_))
    ));
}

#[test]
fn chain_tips_report_active_valid_fork_valid_headers_headers_only_and_invalid() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let a1 = kit.build_chain(1).remove(0);
    let b = kit.build_on(&a1.block_hash(), 2); // heights 2..=3, connected once
    let a = kit.build_on(&a1.block_hash(), 3); // heights 2..=4, the winner
    let c3 = kit.block_on(&a[0].block_hash(), vec![], Amount::ZERO); // never connected
    let d3 = kit.block_on(&a[0].block_hash(), vec![], Amount::ZERO); // header only
    let mut e5 = template(&mut kit, &a[2].block_hash(), vec![], Amount::ZERO);
    e5.txs[0].lock_height = 6;
    let e5 = reseal(e5, &params);

    let now = kit.now();
    let mut node = fresh_node(&params);
    accept_active(&mut node, &a1, now);
    for block in &b {
        accept_active(&mut node, block, now);
    }
    for block in &a {
        accept(&mut node, block, now);
    }
    assert_eq!(node.tip().hash, a[2].block_hash());
    assert_eq!(
        accept(&mut node, &c3, now).outcome,
        ImportOutcome::SideChain
    );
    assert_eq!(
        node.accept_header(&d3.header, now).expect("memory store"),
        HeaderOutcome::New
    );
    assert!(matches!(
        rejection(&mut node, &e5, now),
        BlockError::BadCoinbaseHeight { .. }
    ));

    let tips: HashMap<BlockHash, (u32, u32, TipStatus)> = node
        .chain_tips()
        .into_iter()
        .map(|t| (t.hash, (t.height, t.branchlen, t.status)))
        .collect();
    let expected: HashMap<BlockHash, (u32, u32, TipStatus)> = [
        (a[2].block_hash(), (4, 0, TipStatus::Active)),
        (b[1].block_hash(), (3, 2, TipStatus::ValidFork)),
        (c3.block_hash(), (3, 1, TipStatus::ValidHeaders)),
        (d3.block_hash(), (3, 1, TipStatus::HeadersOnly)),
        (e5.block_hash(), (5, 1, TipStatus::Invalid)),
    ]
    .into();
    assert_eq!(tips, expected);
    let names: Vec<&str> = [
        TipStatus::Active,
        TipStatus::ValidFork,
        TipStatus::ValidHeaders,
        TipStatus::HeadersOnly,
        TipStatus::Invalid,
    ]
    .iter()
    .map(TipStatus::as_str)
    .collect();
    assert_eq!(
        names,
        [
            "active",
            "valid-fork",
            "valid-headers",
            "headers-only",
            "invalid"
        ]
    );
}

#[test]
fn headers_first_tip_moves_only_when_every_body_is_present() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let mut wallet: Wallet = [(kit.genesis_coin(3), 3)].into();
    let blocks = branch(&mut kit, &params.genesis_hash, 1, 10, &mut wallet, 10_000);
    let now = kit.now();
    let mut node = fresh_node(&params);

    let mut orphan_header = blocks[5].header;
    orphan_header.prev_blockhash = BlockHash::ZERO;
    assert!(matches!(
        node.accept_header(&orphan_header, now)
            .expect("memory store"),
        HeaderOutcome::Invalid(BlockError::UnknownParent(_))
    ));
    for block in &blocks {
        assert_eq!(
            node.accept_header(&block.header, now)
                .expect("memory store"),
            HeaderOutcome::New
        );
    }
    assert_eq!(
        node.accept_header(&blocks[3].header, now)
            .expect("memory store"),
        HeaderOutcome::AlreadyHave
    );
    assert_eq!(node.tip().hash, params.genesis_hash);
    assert_eq!(node.tree_len(), 11);

    for block in blocks[1..].iter().rev() {
        let report = accept(&mut node, block, now);
        assert_eq!(report.outcome, ImportOutcome::SideChain);
        assert_eq!(report.tip_changed, None);
        assert_eq!(node.tip().hash, params.genesis_hash);
        assert!(node.entry(&block.block_hash()).expect("known").has_data);
    }
    let tip = node
        .chain_tips()
        .into_iter()
        .find(|t| t.hash == blocks[9].block_hash())
        .expect("the header chain's tip is a tip");
    assert_eq!(
        tip.status,
        TipStatus::HeadersOnly,
        "block 1 is still missing"
    );

    let report = accept(&mut node, &blocks[0], now);
    assert_eq!(report.outcome, ImportOutcome::Active);
    assert_eq!(node.tip().hash, blocks[9].block_hash());
    let changed = report.tip_changed.expect("the tip moved");
    assert_eq!(changed.connected_hashes(), hashes(&blocks));
    assert!(changed.reverted.is_empty());
    assert_utxo_matches_replay(&node, now);
}

/// A [`MemoryStore`] that counts reads of block bodies.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    body_reads: Cell<usize>,
}

impl BlockReader for CountingStore {
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.body_reads.set(self.body_reads.get() + 1);
        self.inner.block(hash)
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        self.inner.undo(hash)
    }
    fn load_index(&self) -> Result<Vec<BlockEntry>, StoreError> {
        self.inner.load_index()
    }
    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.inner.tip()
    }
}

impl UtxoReader for CountingStore {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.inner.coin(outpoint)
    }
    fn for_each_coin(&self, f: &mut dyn FnMut(&OutPoint, &Coin)) -> Result<(), StoreError> {
        self.inner.for_each_coin(f)
    }
}

impl ChainWriter for CountingStore {
    fn write(&mut self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        self.inner.write(batch)
    }
}

#[test]
fn a_reorg_reads_each_stored_body_once_and_reports_the_blocks_it_moved() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let prefix = kit.build_chain(3);
    let fork = prefix[2].block_hash();
    let a = kit.build_on(&fork, 4);
    let b = kit.build_on(&fork, 5);
    let now = kit.now();
    let mut node = ChainState::open(params, CountingStore::default()).expect("memory");
    for block in prefix.iter().chain(&a) {
        let report = node.accept_block(block.clone(), now).expect("memory");
        assert_eq!(report.outcome, ImportOutcome::Active);
    }
    for block in &b[..4] {
        let report = node.accept_block(block.clone(), now).expect("memory");
        assert_eq!(report.outcome, ImportOutcome::SideChain);
    }

    node.store().body_reads.set(0);
    let report = node.accept_block(b[4].clone(), now).expect("memory");
    let changed = report.tip_changed.expect("reorganised");
    // Each body of `a` is read once, to disconnect it, and each body of `b` stored by an
    // earlier import once, to connect it; the block just imported is not read at all, and
    // the report is built from what was read.
    assert_eq!(node.store().body_reads.get(), a.len() + 4);
    let blocks = |moved: &[HashedBlock]| -> Vec<Block> {
        moved.iter().map(|m| Block::clone(&m.block)).collect()
    };
    let mut reverted = a.clone();
    reverted.reverse();
    assert_eq!(blocks(&changed.reverted), reverted);
    assert_eq!(blocks(&changed.connected), b);
    for (moved, height) in changed.connected.iter().zip(4..) {
        assert_eq!(moved.height, height);
        assert_eq!(moved.hash, moved.block.block_hash());
        let txids: Vec<_> = moved.block.txs.iter().map(|tx| tx.txid()).collect();
        assert_eq!(&*moved.txids, &txids[..]);
    }
}
