//! Builders and oracles shared by the integration tests: templates that are *not* accepted
//! by the builder (so tests can break them), a naive UTXO oracle, and replay into a fresh
//! node.

use cairn_core::chain::{ImportOutcome, ImportReport};
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{
    Amount, Block, BlockError, BlockHash, ChainParams, ChainState, Coin, MemoryStore, OutPoint,
    Transaction, TxError, TxOut,
};
use std::collections::BTreeMap;

/// The node under test.
pub type Node = ChainState<MemoryStore>;

/// A builder on the regression-test network (difficulty ~2 hashes per block).
pub fn regtest() -> TestChain {
    TestChain::new(ChainParams::regtest())
}

/// A node that has seen nothing but the genesis block.
pub fn fresh_node(params: &ChainParams) -> Node {
    ChainState::open(params.clone(), MemoryStore::new()).expect("memory store cannot fail")
}

/// Delivers `block` to `node`.
pub fn accept(node: &mut Node, block: &Block, now: u64) -> ImportReport {
    node.accept_block(block.clone(), now)
        .expect("memory store cannot fail")
}

/// Delivers `block` and returns the rule it broke; fails the test if it was not rejected.
pub fn rejection(node: &mut Node, block: &Block, now: u64) -> BlockError {
    let report = accept(node, block, now);
    match report.outcome {
        ImportOutcome::Invalid(error) => error,
        other => panic!("block {} was not rejected: {other:?}", block.block_hash()),
    }
}

/// Delivers `block` and fails the test unless it became the active tip.
pub fn accept_active(node: &mut Node, block: &Block, now: u64) -> ImportReport {
    let report = accept(node, block, now);
    assert_eq!(
        report.outcome,
        ImportOutcome::Active,
        "block {} should be active",
        block.block_hash()
    );
    assert_eq!(node.tip().hash, block.block_hash());
    report
}

/// Unwraps a transaction rule out of a block rejection, checking the transaction's position.
pub fn tx_rule(error: BlockError, expected_index: usize) -> TxError {
    match error {
        BlockError::Tx { index, error, .. } => {
            assert_eq!(index, expected_index, "rule broken by another transaction");
            error
        }
        other => panic!("expected a transaction rule, got {other:?}"),
    }
}

/// An unmined block template on `parent` (a block the builder knows), paying the subsidy
/// plus `fees` to dev account 0. The builder does not accept it, so tests may break it.
pub fn template(
    kit: &mut TestChain,
    parent: &BlockHash,
    txs: Vec<Transaction>,
    fees: Amount,
) -> Block {
    kit.clock += u64::from(kit.params().block_interval_secs);
    let pay_to = kit.key(0).pubkey_hash();
    // The clock makes each template's coinbase (and so its hash) unique.
    let extra = kit.clock.to_le_bytes().to_vec();
    kit.chain
        .block_template_on(parent, pay_to, txs, fees, kit.clock, extra)
        .expect("parent was built by this TestChain")
}

/// A mined block on the builder's tip that the builder has not accepted.
pub fn unaccepted_block(kit: &mut TestChain, txs: Vec<Transaction>, fees: Amount) -> Block {
    let tip = kit.chain.tip().hash;
    let block = template(kit, &tip, txs, fees);
    mine(block, kit.params())
}

/// Recomputes the merkle root for the block's (possibly mutated) transactions and mines it.
pub fn reseal(mut block: Block, params: &ChainParams) -> Block {
    block.header.merkle_root = block.compute_merkle_root();
    block.header.nonce = 0;
    mine(block, params)
}

/// Mines the block again after a header change, leaving the merkle root as it is.
pub fn remine(mut block: Block, params: &ChainParams) -> Block {
    block.header.nonce = 0;
    mine(block, params)
}

/// A signed transaction spending `coin` (owned by dev account `key`) into outputs of
/// `amounts` paying back to the same account.
pub fn pay(kit: &TestChain, coin: &(OutPoint, Coin), key: u32, amounts: &[u64]) -> Transaction {
    let secret = kit.key(key);
    let address = secret.pubkey_hash();
    let outputs = amounts
        .iter()
        .map(|&a| TxOut {
            amount: Amount::from_base(a),
            address,
        })
        .collect();
    kit.spend(std::slice::from_ref(coin), &secret, outputs)
}

/// Output `vout` of `tx` as the coin it becomes when mined at `height`.
pub fn coin_of(tx: &Transaction, vout: u32, height: u32, is_coinbase: bool) -> (OutPoint, Coin) {
    (
        OutPoint {
            txid: tx.txid(),
            vout,
        },
        Coin {
            output: tx.outputs[vout as usize],
            height,
            is_coinbase,
        },
    )
}

/// The coinbase output of `block` mined at `height`.
pub fn coinbase_coin(block: &Block, height: u32) -> (OutPoint, Coin) {
    coin_of(&block.txs[0], 0, height, true)
}

/// Naive UTXO oracle: starts from the genesis allocations and applies each block's
/// transactions in order (heights 1, 2, …), with no validation at all.
pub fn utxo_by_applying<'a>(
    params: &ChainParams,
    blocks: impl IntoIterator<Item = &'a Block>,
) -> BTreeMap<OutPoint, Coin> {
    let mut utxo = BTreeMap::new();
    let genesis = &params.genesis_block.txs[0];
    for vout in 0..genesis.outputs.len() as u32 {
        let (outpoint, coin) = coin_of(genesis, vout, 0, false);
        utxo.insert(outpoint, coin);
    }
    for (i, block) in blocks.into_iter().enumerate() {
        let height = i as u32 + 1;
        for (index, tx) in block.txs.iter().enumerate() {
            for input in &tx.inputs {
                assert!(
                    utxo.remove(&input.prevout).is_some(),
                    "oracle: active chain spends a missing coin"
                );
            }
            for vout in 0..tx.outputs.len() as u32 {
                let (outpoint, coin) = coin_of(tx, vout, height, index == 0);
                utxo.insert(outpoint, coin);
            }
        }
    }
    utxo
}

/// The bodies of the node's active chain after genesis, oldest first.
pub fn active_blocks(node: &Node) -> Vec<Block> {
    (1..=node.height())
        .map(|h| {
            let hash = node.hash_at(h).expect("height within the active chain");
            node.block(&hash)
                .expect("memory store cannot fail")
                .expect("active blocks have bodies")
        })
        .collect()
}

/// Replays `blocks` (a chain from genesis) into a fresh node, each becoming the tip.
pub fn replay(params: &ChainParams, blocks: &[Block], now: u64) -> Node {
    let mut node = fresh_node(params);
    for block in blocks {
        accept_active(&mut node, block, now);
    }
    node
}

/// The node's UTXO set equals both the naive oracle's and a fresh replay's of its active
/// chain, and so do the UTXO summaries.
pub fn assert_utxo_matches_replay(node: &Node, now: u64) {
    let blocks = active_blocks(node);
    let oracle = utxo_by_applying(node.params(), &blocks);
    assert_eq!(
        node.store().coins(),
        oracle,
        "UTXO set differs from applying the active chain"
    );
    let replayed = replay(node.params(), &blocks, now);
    assert_eq!(node.store().coins(), replayed.store().coins());
    assert_eq!(
        node.utxo_stats().expect("memory store cannot fail"),
        replayed.utxo_stats().expect("memory store cannot fail")
    );
}

/// Hashes of `blocks`.
pub fn hashes(blocks: &[Block]) -> Vec<BlockHash> {
    blocks.iter().map(Block::block_hash).collect()
}

/// Non-coinbase transactions of `blocks`, in block order.
pub fn non_coinbase_txs(blocks: &[Block]) -> Vec<Transaction> {
    blocks
        .iter()
        .flat_map(|b| b.txs.iter().skip(1).cloned())
        .collect()
}

/// A copy of the regtest parameters changed by `edit` (another network: other genesis).
pub fn regtest_with(edit: impl FnOnce(&mut cairn_core::params::GenesisConfig)) -> ChainParams {
    let mut config = ChainParams::regtest().config;
    edit(&mut config);
    ChainParams::from_config(config).expect("edited regtest parameters are valid")
}

/// Signs `tx` again (after a mutation) for the coins it spends, all owned by dev account `key`.
pub fn resign(kit: &TestChain, tx: &mut Transaction, coins: &[&(OutPoint, Coin)], key: u32) {
    let secret = kit.key(key);
    let signers: Vec<(Amount, &cairn_core::SecretKey)> = coins
        .iter()
        .map(|(_, c)| (c.output.amount, &secret))
        .collect();
    tx.sign(&kit.params().network_magic, &signers);
}

/// [`rejection`] by the builder's own chain, at the builder's "now".
pub fn reject_in(kit: &mut TestChain, block: &Block) -> BlockError {
    let now = kit.now();
    rejection(&mut kit.chain, block, now)
}

/// [`accept_active`] on the builder's own chain, at the builder's "now".
pub fn activate_in(kit: &mut TestChain, block: &Block) -> ImportReport {
    let now = kit.now();
    accept_active(&mut kit.chain, block, now)
}
