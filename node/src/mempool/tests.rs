//! Mempool behaviour on real regtest chains built by `cairn_core::testkit`.

mod missing_inputs;
mod replacement;
mod tip_change;

use super::*;
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{Block, BlockHash, ImportReport, SecretKey};
use std::cell::Cell;

const NOW: u64 = 1_000_000;

fn setup(config: MempoolConfig) -> (TestChain, Mempool) {
    let params = ChainParams::regtest();
    let kit = TestChain::new(params.clone());
    (kit, Mempool::new(params, config))
}

fn default_setup() -> (TestChain, Mempool) {
    setup(MempoolConfig::default())
}

fn accept(pool: &mut Mempool, kit: &TestChain, tx: &Transaction) -> Result<Accepted, MempoolError> {
    accept_at(pool, kit, tx, NOW)
}

fn accept_at(
    pool: &mut Mempool,
    kit: &TestChain,
    tx: &Transaction,
    now: u64,
) -> Result<Accepted, MempoolError> {
    let result = pool.accept(tx.clone(), kit.chain.store(), kit.chain.height() + 1, now);
    pool.assert_consistent();
    result
}

fn reason(result: Result<Accepted, MempoolError>) -> String {
    result
        .expect_err("the transaction is rejected")
        .reject_reason()
}

fn pay(key: &SecretKey, amount: u64) -> TxOut {
    TxOut {
        amount: Amount::from_base(amount),
        address: key.pubkey_hash(),
    }
}

/// Output `vout` of an unconfirmed (or just confirmed) transaction, as a spendable coin.
fn output(tx: &Transaction, vout: u32) -> (OutPoint, Coin) {
    (
        OutPoint {
            txid: tx.txid(),
            vout,
        },
        Coin {
            output: tx.outputs[vout as usize],
            height: 0,
            is_coinbase: false,
        },
    )
}

/// Spends `coin` (owned by `key`) back to `key`, paying `fee`.
fn spend(kit: &TestChain, coin: (OutPoint, Coin), key: &SecretKey, fee: u64) -> Transaction {
    let amount = coin.1.output.amount.to_base() - fee;
    kit.spend(&[coin], key, vec![pay(key, amount)])
}

/// Size of every one-input, one-output transaction (fixed-width encoding).
fn simple_size(kit: &TestChain) -> u64 {
    spend(kit, kit.genesis_coin(1), &kit.key(1), 0).encoded_size() as u64
}

/// Spends genesis coin `i` back to its owner at `rate` base units per byte.
fn at_rate(kit: &TestChain, i: u32, rate: u64) -> Transaction {
    let tx = spend(
        kit,
        kit.genesis_coin(i),
        &kit.key(i),
        rate * simple_size(kit),
    );
    assert_eq!(tx.encoded_size() as u64, simple_size(kit));
    tx
}

/// Spends output 0 of `parent` (owned by `key`) at `rate`.
fn child_at_rate(kit: &TestChain, parent: &Transaction, key: &SecretKey, rate: u64) -> Transaction {
    spend(kit, output(parent, 0), key, rate * simple_size(kit))
}

fn set(txids: impl IntoIterator<Item = Txid>) -> BTreeSet<Txid> {
    txids.into_iter().collect()
}

/// A UTXO set that counts the coins looked up in it: the pool's work, measured.
struct CountingUtxos<'a, U: ?Sized> {
    inner: &'a U,
    lookups: Cell<usize>,
}

impl<'a, U: UtxoReader + ?Sized> CountingUtxos<'a, U> {
    fn new(inner: &'a U) -> Self {
        CountingUtxos {
            inner,
            lookups: Cell::new(0),
        }
    }

    /// Lookups since the last call.
    fn take(&self) -> usize {
        self.lookups.replace(0)
    }
}

impl<U: UtxoReader + ?Sized> UtxoReader for CountingUtxos<'_, U> {
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, cairn_core::store::StoreError> {
        self.lookups.set(self.lookups.get() + 1);
        self.inner.coin(outpoint)
    }

    fn for_each_coin(
        &self,
        f: &mut dyn FnMut(&OutPoint, &Coin),
    ) -> Result<(), cairn_core::store::StoreError> {
        self.inner.for_each_coin(f)
    }
}

#[test]
fn accepts_a_valid_transaction() {
    let (kit, mut pool) = default_setup();
    let tx = at_rate(&kit, 1, 3);
    let size = tx.encoded_size();
    let accepted = accept(&mut pool, &kit, &tx).expect("valid");
    assert_eq!(accepted.txid, tx.txid());
    assert_eq!(accepted.fee, Amount::from_base(3 * size as u64));
    assert_eq!(accepted.size, size);
    assert!(accepted.replaced.is_empty() && accepted.evicted.is_empty());
    assert!(pool.contains(&tx.txid()));
    assert_eq!(pool.get(&tx.txid()), Some(&tx));
    assert_eq!(pool.txids(), vec![tx.txid()]);
    assert_eq!(
        pool.info(),
        MempoolInfo {
            size: 1,
            bytes: size,
            minfee: 1
        }
    );
    assert_eq!(pool.spender_of(&kit.genesis_coin(1).0), Some(tx.txid()));
    let entry = &pool.entries()[0];
    assert_eq!(entry.time, NOW);
    assert_eq!(entry.fee_rate, FeeRate::new(Amount::from_base(3), 1));
    assert_eq!(serde_json::to_string(&entry.fee_rate).expect("json"), "3.0");
    assert!(entry.depends.is_empty());
}

#[test]
fn test_accept_checks_without_adding() {
    let (kit, pool) = default_setup();
    let tx = at_rate(&kit, 1, 3);
    let verdict = pool
        .test_accept(&tx, kit.chain.store(), kit.chain.height() + 1)
        .expect("valid");
    assert_eq!(verdict.txid, tx.txid());
    assert!(pool.is_empty());
}

#[test]
fn accepts_a_chain_of_unconfirmed_transactions() {
    let (kit, mut pool) = default_setup();
    let key = kit.key(1);
    let parent = at_rate(&kit, 1, 2);
    let child = child_at_rate(&kit, &parent, &key, 2);
    let grandchild = child_at_rate(&kit, &child, &key, 2);

    let orphan = accept(&mut pool, &kit, &child);
    assert_eq!(
        orphan
            .as_ref()
            .expect_err("parent unknown")
            .missing_outpoint(),
        Some(output(&parent, 0).0)
    );
    assert_eq!(reason(orphan), "bad-txns-inputs-missingorspent");

    accept(&mut pool, &kit, &parent).expect("parent");
    accept(&mut pool, &kit, &child).expect("child spends the unconfirmed parent");
    accept(&mut pool, &kit, &grandchild).expect("grandchild");
    let child_entry = pool.entry(&child.txid()).expect("in pool");
    assert_eq!(child_entry.depends, vec![parent.txid()]);
    assert_eq!(child_entry.ancestor_count, 2);
    assert_eq!(
        pool.entry(&parent.txid())
            .expect("in pool")
            .descendant_count,
        3
    );
}

#[test]
fn rejects_a_known_transaction() {
    let (mut kit, mut pool) = default_setup();
    let tx = at_rate(&kit, 1, 1);
    accept(&mut pool, &kit, &tx).expect("first time");
    assert_eq!(reason(accept(&mut pool, &kit, &tx)), "txn-already-known");

    // Once confirmed, sending it again is still "known", not a missing input.
    let confirmed = at_rate(&kit, 2, 1);
    let fee = Amount::from_base(simple_size(&kit));
    let tip = kit.chain.tip().hash;
    kit.block_on(&tip, vec![confirmed.clone()], fee);
    assert_eq!(
        reason(accept(&mut pool, &kit, &confirmed)),
        "txn-already-known"
    );
}

#[test]
fn rejects_a_coinbase() {
    let (kit, mut pool) = default_setup();
    let coinbase = Transaction {
        version: 1,
        inputs: vec![],
        outputs: vec![pay(&kit.key(1), 50)],
        lock_height: 1,
        data: vec![],
    };
    assert_eq!(reason(accept(&mut pool, &kit, &coinbase)), "coinbase");
}

#[test]
fn rejects_a_missing_input() {
    let (kit, mut pool) = default_setup();
    let (_, coin) = kit.genesis_coin(1);
    let nowhere = OutPoint {
        txid: Txid(cairn_core::Hash256([7; 32])),
        vout: 0,
    };
    let tx = spend(&kit, (nowhere, coin), &kit.key(1), 1000);
    assert_eq!(
        reason(accept(&mut pool, &kit, &tx)),
        "bad-txns-inputs-missingorspent"
    );
}

#[test]
fn rejects_a_premature_coinbase_spend_until_it_matures() {
    let (mut kit, mut pool) = default_setup();
    let block = kit.build_chain(1).remove(0);
    let coinbase = (
        OutPoint {
            txid: block.txs[0].txid(),
            vout: 0,
        },
        Coin {
            output: block.txs[0].outputs[0],
            height: 1,
            is_coinbase: true,
        },
    );
    let tx = spend(&kit, coinbase, &kit.key(0), 1000);
    assert_eq!(
        reason(accept(&mut pool, &kit, &tx)),
        "bad-txns-premature-spend-of-coinbase"
    );
    // Mined at height 1 + maturity it has exactly `maturity` confirmations.
    let maturity = kit.params().coinbase_maturity as usize;
    kit.build_chain(maturity - 1);
    accept(&mut pool, &kit, &tx).expect("mature now");
}

#[test]
fn rejects_bad_signatures() {
    let (kit, mut pool) = default_setup();
    let wrong_key = spend(&kit, kit.genesis_coin(1), &kit.key(2), 1000);
    assert_eq!(
        reason(accept(&mut pool, &kit, &wrong_key)),
        "mandatory-script-verify-flag-failed"
    );
    let mut tampered = spend(&kit, kit.genesis_coin(1), &kit.key(1), 1000);
    tampered.outputs[0].amount = Amount::from_base(tampered.outputs[0].amount.to_base() - 1);
    assert_eq!(
        reason(accept(&mut pool, &kit, &tampered)),
        "mandatory-script-verify-flag-failed"
    );
    assert!(pool.is_empty());
}

#[test]
fn rejects_outputs_above_inputs_and_non_final() {
    let (kit, mut pool) = default_setup();
    let (outpoint, coin) = kit.genesis_coin(1);
    let key = kit.key(1);
    let too_much = kit.spend(
        &[(outpoint, coin)],
        &key,
        vec![pay(&key, coin.output.amount.to_base() + 1)],
    );
    assert_eq!(
        reason(accept(&mut pool, &kit, &too_much)),
        "bad-txns-in-belowout"
    );

    let mut later = spend(&kit, (outpoint, coin), &key, 1000);
    later.lock_height = kit.chain.height() + 2;
    assert_eq!(reason(accept(&mut pool, &kit, &later)), "bad-txns-nonfinal");
}

#[test]
fn enforces_the_minimum_relay_fee() {
    let (kit, mut pool) = default_setup();
    let size = simple_size(&kit);
    let free = spend(&kit, kit.genesis_coin(1), &kit.key(1), 0);
    assert_eq!(
        reason(accept(&mut pool, &kit, &free)),
        "min relay fee not met"
    );
    let short = spend(&kit, kit.genesis_coin(1), &kit.key(1), size - 1);
    assert_eq!(
        reason(accept(&mut pool, &kit, &short)),
        "min relay fee not met"
    );
    let enough = spend(&kit, kit.genesis_coin(1), &kit.key(1), size);
    accept(&mut pool, &kit, &enough).expect("exactly the minimum rate");
}

#[test]
fn a_conflict_paying_the_same_fee_is_rejected() {
    let (kit, mut pool) = default_setup();
    let key = kit.key(1);
    let first = at_rate(&kit, 1, 10);
    accept(&mut pool, &kit, &first).expect("first spend");
    // Same coin, same fee, another destination.
    let fee = 10 * simple_size(&kit);
    let (outpoint, coin) = kit.genesis_coin(1);
    let second = kit.spend(
        &[(outpoint, coin)],
        &key,
        vec![pay(&kit.key(2), coin.output.amount.to_base() - fee)],
    );
    assert_eq!(
        reason(accept(&mut pool, &kit, &second)),
        "txn-mempool-conflict"
    );
    assert_eq!(pool.txids(), vec![first.txid()]);
}

#[test]
fn a_higher_fee_replacement_evicts_the_conflict_and_its_descendants() {
    let (kit, mut pool) = default_setup();
    let key = kit.key(1);
    let original = at_rate(&kit, 1, 10);
    let child = child_at_rate(&kit, &original, &key, 10);
    let bystander = at_rate(&kit, 2, 1);
    for tx in [&original, &child, &bystander] {
        accept(&mut pool, &kit, tx).expect("accepted");
    }

    // Beats the conflict's rate, but not the fees of the conflict plus its child.
    let cheap = at_rate(&kit, 1, 15);
    let err = accept(&mut pool, &kit, &cheap).expect_err("pays less than it evicts");
    assert!(matches!(
        err,
        MempoolError::Conflict {
            rule: ReplacementRule::InsufficientFee { .. },
            ..
        }
    ));
    assert_eq!(err.reject_reason(), "txn-mempool-conflict");

    let replacement = at_rate(&kit, 1, 25);
    let accepted = accept(&mut pool, &kit, &replacement).expect("pays for everything");
    assert_eq!(accepted.replaced, vec![original.txid(), child.txid()]);
    assert_eq!(
        set(pool.txids()),
        set([bystander.txid(), replacement.txid()])
    );
    assert_eq!(
        pool.spender_of(&kit.genesis_coin(1).0),
        Some(replacement.txid())
    );
}

#[test]
fn a_higher_fee_at_a_lower_rate_does_not_replace() {
    let (kit, mut pool) = default_setup();
    let key = kit.key(1);
    let original = at_rate(&kit, 1, 10);
    accept(&mut pool, &kit, &original).expect("accepted");
    let fee = 10 * simple_size(&kit) + 1;
    let (outpoint, coin) = kit.genesis_coin(1);
    let mut outputs = vec![pay(&key, 1000); 4];
    outputs[0].amount = Amount::from_base(coin.output.amount.to_base() - fee - 3000);
    let bigger = kit.spend(&[(outpoint, coin)], &key, outputs);
    assert!(bigger.encoded_size() > original.encoded_size());
    let err = accept(&mut pool, &kit, &bigger).expect_err("lower fee rate");
    assert!(matches!(
        err,
        MempoolError::Conflict {
            rule: ReplacementRule::InsufficientFeeRate { .. },
            ..
        }
    ));
    assert_eq!(err.reject_reason(), "txn-mempool-conflict");
    assert_eq!(pool.txids(), vec![original.txid()]);
}

#[test]
fn a_replacement_may_not_spend_what_it_replaces() {
    let (kit, mut pool) = default_setup();
    let key = kit.key(1);
    let original = at_rate(&kit, 1, 10);
    accept(&mut pool, &kit, &original).expect("accepted");
    let coins = [kit.genesis_coin(1), output(&original, 0)];
    let total = coins[0].1.output.amount.to_base() + coins[1].1.output.amount.to_base();
    let tx = kit.spend(&coins, &key, vec![pay(&key, total - 1_000_000)]);
    assert_eq!(
        reason(accept(&mut pool, &kit, &tx)),
        "bad-txns-spends-conflicting-tx"
    );
    assert_eq!(pool.txids(), vec![original.txid()]);
}

#[test]
fn a_full_pool_evicts_the_lowest_fee_rate_and_refuses_cheaper_newcomers() {
    let (kit, _) = default_setup();
    let size = simple_size(&kit) as usize;
    let (kit, mut pool) = setup(MempoolConfig {
        max_bytes: 3 * size,
        ..MempoolConfig::default()
    });
    let key1 = kit.key(1);
    // A cheap parent with a slightly better child: evicted together.
    let parent = at_rate(&kit, 1, 2);
    let child = child_at_rate(&kit, &parent, &key1, 3);
    let rich = at_rate(&kit, 2, 30);
    for tx in [&parent, &child, &rich] {
        accept(&mut pool, &kit, tx).expect("fits");
    }
    assert_eq!(pool.bytes(), 3 * size);

    let mid = at_rate(&kit, 3, 10);
    let accepted = accept(&mut pool, &kit, &mid).expect("outbids the cheap package");
    assert_eq!(accepted.evicted, vec![parent.txid(), child.txid()]);
    assert_eq!(set(pool.txids()), set([rich.txid(), mid.txid()]));

    let low = at_rate(&kit, 4, 20);
    let accepted = accept(&mut pool, &kit, &low).expect("room for one more");
    assert!(accepted.evicted.is_empty());

    // The cheapest newcomer is refused and nothing else moves.
    let before = (pool.txids(), pool.bytes());
    let cheapest = at_rate(&kit, 5, 5);
    assert_eq!(reason(accept(&mut pool, &kit, &cheapest)), "mempool full");
    assert_eq!((pool.txids(), pool.bytes()), before);
}

#[test]
fn a_replacement_that_would_be_evicted_leaves_the_pool_as_it_was() {
    let (kit, _) = default_setup();
    let size = simple_size(&kit) as usize;
    let (kit, mut pool) = setup(MempoolConfig {
        max_bytes: 2 * size,
        ..MempoolConfig::default()
    });
    let key = kit.key(1);
    let original = at_rate(&kit, 1, 10);
    let other = at_rate(&kit, 2, 20);
    accept(&mut pool, &kit, &original).expect("fits");
    accept(&mut pool, &kit, &other).expect("fits");
    // Outbids `original` (rate 15 > 10) but is larger, so the pool overflows and it has
    // the lowest rate.
    let (outpoint, coin) = kit.genesis_coin(1);
    let mut outputs = vec![pay(&key, 1000); 3];
    let bigger_size = {
        let probe = kit.spend(&[(outpoint, coin)], &key, outputs.clone());
        probe.encoded_size() as u64
    };
    outputs[0].amount = Amount::from_base(coin.output.amount.to_base() - 15 * bigger_size - 2000);
    let replacement = kit.spend(&[(outpoint, coin)], &key, outputs);
    assert_eq!(replacement.encoded_size() as u64, bigger_size);
    assert_eq!(
        reason(accept(&mut pool, &kit, &replacement)),
        "mempool full"
    );
    assert_eq!(set(pool.txids()), set([original.txid(), other.txid()]));
    assert_eq!(pool.spender_of(&outpoint), Some(original.txid()));
}

#[test]
fn chain_limits_bound_unconfirmed_ancestors_and_descendants() {
    let (kit, mut pool) = setup(MempoolConfig {
        max_ancestors: 3,
        max_descendants: 3,
        ..MempoolConfig::default()
    });
    let key = kit.key(1);
    let a = at_rate(&kit, 1, 2);
    let b = child_at_rate(&kit, &a, &key, 2);
    let c = child_at_rate(&kit, &b, &key, 2);
    let d = child_at_rate(&kit, &c, &key, 2);
    for tx in [&a, &b, &c] {
        accept(&mut pool, &kit, tx).expect("within the limit");
    }
    assert_eq!(
        reason(accept(&mut pool, &kit, &d)),
        "too-long-mempool-chain"
    );

    // A second child of `a` would give `a` four descendants (itself included).
    let (outpoint, coin) = kit.genesis_coin(2);
    let key2 = kit.key(2);
    let fan = kit.spend(
        &[(outpoint, coin)],
        &key2,
        vec![
            pay(&key2, 1_000_000),
            pay(&key2, 1_000_000),
            pay(&key2, 1_000_000),
        ],
    );
    accept(&mut pool, &kit, &fan).expect("parent");
    for vout in 0..2 {
        let child = spend(&kit, output(&fan, vout), &key2, 2 * simple_size(&kit));
        accept(&mut pool, &kit, &child).expect("within the limit");
    }
    let third = spend(&kit, output(&fan, 2), &key2, 2 * simple_size(&kit));
    assert_eq!(
        reason(accept(&mut pool, &kit, &third)),
        "too-long-mempool-chain"
    );
}

#[test]
fn expiry_drops_old_transactions_with_their_descendants() {
    let (kit, mut pool) = setup(MempoolConfig {
        expiry_secs: 100,
        ..MempoolConfig::default()
    });
    let key = kit.key(1);
    let old = at_rate(&kit, 1, 2);
    let young_child = child_at_rate(&kit, &old, &key, 2);
    let other = at_rate(&kit, 2, 2);
    accept_at(&mut pool, &kit, &old, 1000).expect("accepted");
    accept_at(&mut pool, &kit, &other, 1050).expect("accepted");
    accept_at(&mut pool, &kit, &young_child, 1090).expect("accepted");

    assert!(
        pool.expire(1100).is_empty(),
        "exactly expiry_secs old stays"
    );
    assert_eq!(pool.expire(1101), vec![old.txid(), young_child.txid()]);
    pool.assert_consistent();
    assert_eq!(pool.txids(), vec![other.txid()]);
    assert_eq!(pool.expire(1151), vec![other.txid()]);
    assert!(pool.is_empty() && pool.bytes() == 0);
}

#[test]
fn a_block_removes_its_transactions_and_their_conflicts() {
    let (mut kit, mut pool) = default_setup();
    let key1 = kit.key(1);
    let key2 = kit.key(2);
    let confirmed = at_rate(&kit, 1, 2);
    let confirmed_child = child_at_rate(&kit, &confirmed, &key1, 2);
    let loser = at_rate(&kit, 2, 2);
    let loser_child = child_at_rate(&kit, &loser, &key2, 2);
    let bystander = at_rate(&kit, 3, 2);
    for tx in [
        &confirmed,
        &confirmed_child,
        &loser,
        &loser_child,
        &bystander,
    ] {
        accept(&mut pool, &kit, tx).expect("accepted");
    }
    // The block confirms `confirmed` and a double spend of `loser`'s coin.
    let winner = at_rate(&kit, 2, 7);
    let fees = Amount::from_base(9 * simple_size(&kit));
    let tip = kit.chain.tip().hash;
    let block = kit.block_on(&tip, vec![confirmed.clone(), winner], fees);

    let conflicts = pool.remove_for_block(&block);
    pool.assert_consistent();
    assert_eq!(conflicts, vec![loser.txid(), loser_child.txid()]);
    assert_eq!(
        set(pool.txids()),
        set([confirmed_child.txid(), bystander.txid()])
    );
    assert!(
        pool.entry(&confirmed_child.txid())
            .expect("stays")
            .depends
            .is_empty()
    );
    // What is left is still valid on the new tip.
    let (txs, _) = pool.select_for_block(usize::MAX);
    let fees = Amount::from_base(4 * simple_size(&kit));
    let tip = kit.chain.tip().hash;
    kit.block_on(&tip, txs, fees);
}

/// Mines a block on `parent` and returns the chain's report (which `block_on` drops).
fn mine_reporting(
    kit: &mut TestChain,
    parent: &BlockHash,
    txs: Vec<Transaction>,
    fees: Amount,
    salt: u64,
) -> (Block, ImportReport) {
    kit.clock += u64::from(kit.params().block_interval_secs);
    let template = kit
        .chain
        .block_template_on(
            parent,
            kit.key(0).pubkey_hash(),
            txs,
            fees,
            kit.clock,
            salt.to_le_bytes().to_vec(),
        )
        .expect("parent is known");
    let block = mine(template, kit.params());
    let report = kit
        .chain
        .accept_block(block.clone(), kit.now())
        .expect("memory store");
    (block, report)
}

#[test]
fn a_reorg_returns_transactions_and_drops_the_ones_it_invalidates() {
    let (mut kit, mut pool) = default_setup();
    let genesis = kit.params().genesis_hash;
    let size = simple_size(&kit);
    let (key0, key1, key2) = (kit.key(0), kit.key(1), kit.key(2));

    // Main chain: block 1 confirms `a` and `e`, then enough blocks to mature its coinbase.
    let a = at_rate(&kit, 1, 2);
    let e = at_rate(&kit, 2, 2);
    let b1 = kit.block_on(
        &genesis,
        vec![a.clone(), e.clone()],
        Amount::from_base(4 * size),
    );
    kit.build_chain(kit.params().coinbase_maturity as usize);
    let coinbase = (
        OutPoint {
            txid: b1.txs[0].txid(),
            vout: 0,
        },
        Coin {
            output: b1.txs[0].outputs[0],
            height: 1,
            is_coinbase: true,
        },
    );
    let spends_a = child_at_rate(&kit, &a, &key1, 2);
    let spends_e = child_at_rate(&kit, &e, &key2, 2);
    let spends_coinbase = spend(&kit, coinbase, &key0, 2 * size);
    let grandchild = child_at_rate(&kit, &spends_coinbase, &key0, 2);
    let bystander = at_rate(&kit, 3, 2);
    let conflicted = at_rate(&kit, 4, 2);
    for tx in [
        &spends_a,
        &spends_e,
        &spends_coinbase,
        &grandchild,
        &bystander,
        &conflicted,
    ] {
        accept(&mut pool, &kit, tx).expect("valid on the main chain");
    }

    // A longer branch from genesis double-spends `e`'s coin and `conflicted`'s coin.
    let e_double = spend(&kit, kit.genesis_coin(2), &key2, 3 * size);
    let conflict_winner = spend(&kit, kit.genesis_coin(4), &kit.key(4), 3 * size);
    let main_len = kit.chain.height() as usize;
    let mut parent = genesis;
    let mut change = None;
    for i in 0..=main_len {
        let txs = if i == 0 {
            vec![e_double.clone(), conflict_winner.clone()]
        } else {
            vec![]
        };
        let fees = Amount::from_base(if i == 0 { 6 * size } else { 0 });
        let (block, report) = mine_reporting(&mut kit, &parent, txs, fees, 1_000 + i as u64);
        parent = block.block_hash();
        if let Some(tip_changed) = report.tip_changed {
            change = Some(tip_changed);
        }
    }
    let change = change.expect("the longer branch became active");
    assert_eq!(kit.chain.tip().hash, parent);
    assert_eq!(change.returned_txs, vec![a.clone(), e.clone()]);
    let report = pool
        .update_for_tip_change(&change, kit.chain.store(), kit.chain.height() + 1, NOW + 60)
        .expect("memory store");
    pool.assert_consistent();
    assert_eq!(report.returned, vec![a.txid()]);
    assert_eq!(
        set(report.removed),
        set([
            conflicted.txid(),
            spends_e.txid(),
            spends_coinbase.txid(),
            grandchild.txid()
        ])
    );
    assert_eq!(
        set(pool.txids()),
        set([a.txid(), spends_a.txid(), bystander.txid()])
    );
    let readded = pool.entry(&spends_a.txid()).expect("kept");
    assert_eq!(readded.depends, vec![a.txid()]);
    assert_eq!(readded.time, NOW, "arrival time survives the reorg");
    assert_eq!(pool.entry(&a.txid()).expect("returned").time, NOW + 60);

    // The rebuilt pool makes a valid block on the new chain, parent first.
    let (txs, fees) = pool.select_for_block(usize::MAX);
    let order: Vec<Txid> = txs.iter().map(Transaction::txid).collect();
    let pos = |t: Txid| order.iter().position(|x| *x == t).expect("selected");
    assert!(pos(a.txid()) < pos(spends_a.txid()));
    let tip = kit.chain.tip().hash;
    kit.block_on(&tip, txs, fees);
}

#[test]
fn block_selection_prefers_packages_by_fee_rate_within_the_size_limit() {
    let (kit, mut pool) = default_setup();
    let size = simple_size(&kit) as usize;
    let key1 = kit.key(1);
    let parent = at_rate(&kit, 1, 1);
    let child = child_at_rate(&kit, &parent, &key1, 100);
    let mid = at_rate(&kit, 2, 20);
    let low = at_rate(&kit, 3, 5);
    for tx in [&parent, &child, &mid, &low] {
        accept(&mut pool, &kit, tx).expect("accepted");
    }
    let txids = |max: usize| -> Vec<Txid> {
        pool.select_for_block(max)
            .0
            .iter()
            .map(Transaction::txid)
            .collect()
    };
    // The child's package (rate ~50.5) beats `mid` (20); the parent comes first.
    assert_eq!(
        txids(usize::MAX),
        vec![parent.txid(), child.txid(), mid.txid(), low.txid()]
    );
    assert_eq!(
        txids(3 * size),
        vec![parent.txid(), child.txid(), mid.txid()]
    );
    assert_eq!(txids(2 * size), vec![parent.txid(), child.txid()]);
    // The package does not fit in one slot: the best single transaction does.
    assert_eq!(txids(size), vec![mid.txid()]);
    assert_eq!(txids(size - 1), Vec::<Txid>::new());
    let (_, fees) = pool.select_for_block(usize::MAX);
    assert_eq!(fees, Amount::from_base((1 + 100 + 20 + 5) * size as u64));
}

#[test]
fn address_queries_see_spent_coins_and_new_outputs() {
    let (kit, mut pool) = default_setup();
    let (key1, key3) = (kit.key(1), kit.key(3));
    let (outpoint, coin) = kit.genesis_coin(1);
    let payment = kit.spend(
        &[(outpoint, coin)],
        &key1,
        vec![
            pay(&key3, 5_000_000),
            pay(&key1, coin.output.amount.to_base() - 5_000_000 - 10_000),
        ],
    );
    accept(&mut pool, &kit, &payment).expect("accepted");
    let spent = pool.spent_by_address(&key1.pubkey_hash());
    assert_eq!(spent.len(), 1);
    assert_eq!(
        (spent[0].outpoint, spent[0].coin, spent[0].spender),
        (outpoint, coin, payment.txid())
    );
    let received = pool.received_by_address(&key3.pubkey_hash());
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].outpoint, output(&payment, 0).0);
    assert_eq!(received[0].spent_by, None);
    assert_eq!(
        pool.received_by_address(&key1.pubkey_hash())[0]
            .outpoint
            .vout,
        1
    );

    assert_eq!(
        pool.address_activity(&key3.pubkey_hash()),
        (
            vec![],
            vec![(output(&payment, 0).0, Amount::from_base(5_000_000))]
        )
    );

    let onward = spend(&kit, output(&payment, 0), &key3, 10_000);
    accept(&mut pool, &kit, &onward).expect("accepted");
    let spent3 = pool.spent_by_address(&key3.pubkey_hash());
    assert_eq!(spent3.len(), 1);
    assert_eq!(spent3[0].outpoint, output(&payment, 0).0);
    assert!(!spent3[0].coin.is_coinbase);
    assert_eq!(
        pool.received_by_address(&key3.pubkey_hash())[0].spent_by,
        Some(onward.txid())
    );
}

/// A deterministic xorshift generator: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_traffic_keeps_the_pool_consistent_and_its_templates_valid() {
    random_traffic(0x9e37_79b9_7f4a_7c15);
}

fn random_traffic(seed: u64) {
    let (kit, _) = default_setup();
    let size = simple_size(&kit) as usize;
    let (mut kit, mut pool) = setup(MempoolConfig {
        max_bytes: 15 * size,
        expiry_secs: 120,
        max_ancestors: 6,
        max_descendants: 6,
        ..MempoolConfig::default()
    });
    let mut rng = Rng(seed);
    // Every coin ever created, with the dev key owning it; many get spent or vanish, and
    // spending them again exercises conflicts, replacement and missing inputs.
    let mut coins: Vec<((OutPoint, Coin), u32)> =
        (1..10).map(|i| (kit.genesis_coin(i), i)).collect();
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut now = NOW;
    for step in 0..400 {
        now += 1;
        // Forget coins that are gone for good; keep those spent in the pool (conflicts).
        coins.retain(|((outpoint, _), _)| {
            pool.contains(&outpoint.txid)
                || kit
                    .chain
                    .store()
                    .coin(outpoint)
                    .expect("memory store")
                    .is_some()
        });
        let (coin, owner) = coins[rng.below(coins.len() as u64) as usize];
        let key = kit.key(owner);
        let recipients: Vec<u32> = (0..1 + rng.below(2))
            .map(|_| 1 + rng.below(5) as u32)
            .collect();
        let build = |fee: u64| {
            let amount = coin.1.output.amount.to_base().saturating_sub(fee);
            let each = amount / recipients.len() as u64;
            let outputs = recipients.iter().map(|r| pay(&kit.key(*r), each)).collect();
            kit.spend(&[coin], &key, outputs)
        };
        let fee = (1 + rng.below(40)) * build(0).encoded_size() as u64;
        if coin.1.output.amount.to_base() < fee + 1000 {
            continue;
        }
        let tx = build(fee);
        match accept_at(&mut pool, &kit, &tx, now) {
            Ok(accepted) => {
                *outcomes.entry("accepted").or_default() += 1;
                if !accepted.replaced.is_empty() {
                    *outcomes.entry("replaced").or_default() += 1;
                }
                if !accepted.evicted.is_empty() {
                    *outcomes.entry("evicted").or_default() += 1;
                }
                for (vout, r) in recipients.iter().enumerate() {
                    coins.push((output(&tx, vout as u32), *r));
                }
            }
            Err(e) => {
                let reason: &'static str = Box::leak(e.reject_reason().into_boxed_str());
                *outcomes.entry(reason).or_default() += 1;
            }
        }
        assert!(pool.bytes() <= 15 * size);
        if step % 37 == 36 {
            pool.expire(now);
            pool.assert_consistent();
        }
        if step % 25 == 24 {
            // Whatever the pool selects, consensus accepts, in that order.
            let max = (rng.below(8) as usize + 1) * size;
            let (txs, fees) = pool.select_for_block(max);
            assert!(txs.iter().map(Transaction::encoded_size).sum::<usize>() <= max);
            let tip = kit.chain.tip().hash;
            let block = kit.block_on(&tip, txs, fees);
            pool.remove_for_block(&block);
            pool.assert_consistent();
            for tx in &block.txs[1..] {
                assert!(!pool.contains(&tx.txid()));
            }
        }
    }
    // The walk reached the interesting paths.
    for reason in [
        "accepted",
        "replaced",
        "evicted",
        "txn-mempool-conflict",
        "mempool full",
    ] {
        assert!(
            outcomes.get(reason).copied().unwrap_or(0) > 0,
            "{reason}: {outcomes:?}"
        );
    }
}

#[test]
fn accepted_signatures_are_cached_and_rejected_ones_are_not() {
    let (kit, mut pool) = default_setup();
    let cache = Arc::new(SigCache::new([9; 32], 1000));
    pool.set_sigcache(cache.clone());
    let mut tampered = spend(&kit, kit.genesis_coin(2), &kit.key(2), 1000);
    tampered.outputs[0].amount = Amount::from_base(tampered.outputs[0].amount.to_base() - 1);
    assert_eq!(
        reason(accept(&mut pool, &kit, &tampered)),
        "mandatory-script-verify-flag-failed"
    );
    assert!(cache.is_empty());
    let tx = spend(&kit, kit.genesis_coin(1), &kit.key(1), 1000);
    accept(&mut pool, &kit, &tx).unwrap();
    assert_eq!(cache.len(), 1);
    // The block confirming it connects without verifying it again, and takes the entry.
    let mut kit = kit;
    let tip = kit.chain.tip().hash;
    kit.chain.set_sigcache(cache.clone());
    kit.block_on(&tip, vec![tx], Amount::from_base(1000));
    assert!(cache.is_empty());
}
