//! Byzantine finding 7: a block used to make the pool re-validate every transaction it
//! holds, so a peer filling the pool made every block cost a pass over all of it.

use super::*;
use cairn_core::testkit::SpendWorkload;

/// Unrelated transactions in the pool.
const POOL: usize = 5_000;

#[test]
fn a_block_confirming_one_of_thousands_of_pool_transactions_reads_no_coins() {
    let params = ChainParams::regtest();
    let accounts = params.config.dev_accounts.len();
    let mut work = SpendWorkload::new(params.clone(), POOL / accounts + 1, 1_000);
    let spends = work.spends(POOL);
    let kit = &mut work.builder;
    let mut pool = Mempool::new(params, MempoolConfig::default());
    let height = kit.chain.height() + 1;
    for tx in &spends {
        // Not `accept`: checking the whole pool's consistency after each would be quadratic.
        pool.accept(tx.clone(), kit.chain.store(), height, NOW)
            .expect("an independent spend");
    }
    // `spends[1]` loses its coin to a double spend in the block; its descendants go too.
    let key = kit.key(0);
    let loser = &spends[1];
    let child = child_at_rate(kit, loser, &key, 2);
    let grandchild = child_at_rate(kit, &child, &key, 2);
    accept(&mut pool, kit, &child).expect("child");
    accept(&mut pool, kit, &grandchild).expect("grandchild");
    let prevout = loser.inputs[0].prevout;
    let coin = kit
        .chain
        .coin(&prevout)
        .expect("memory")
        .expect("confirmed");
    let winner = spend(kit, (prevout, coin), &key, 5_000);
    assert_eq!(pool.len(), POOL + 2);

    let old_tip = kit.chain.tip().hash;
    let txs = vec![spends[0].clone(), winner.clone()];
    let (block, report) = mine_reporting(kit, &old_tip, txs, Amount::from_base(6_000), 1);
    let change = report.tip_changed.expect("the block extends the tip");
    let utxos = CountingUtxos::new(kit.chain.store());
    let update = pool
        .update_for_tip_change(&change, &utxos, kit.chain.height() + 1, NOW + 5)
        .expect("memory store");
    let lookups = utxos.take();
    assert!(
        lookups <= block.txs.len(),
        "{lookups} coins read for a block of {} transactions",
        block.txs.len()
    );
    assert!(update.returned.is_empty());
    assert_eq!(
        update.removed,
        vec![loser.txid(), child.txid(), grandchild.txid()]
    );
    assert_eq!(pool.len(), POOL - 2);
    assert!(!pool.contains(&spends[0].txid()) && pool.contains(&spends[2].txid()));
    pool.assert_consistent();

    // A reorganisation still re-validates everything: a longer branch without the block.
    let side = mine_reporting(kit, &old_tip, vec![], Amount::ZERO, 2).0;
    let (_, report) = mine_reporting(kit, &side.block_hash(), vec![], Amount::ZERO, 3);
    let change = report.tip_changed.expect("the longer branch wins");
    assert_eq!(change.reorg_depth(), 1);
    let utxos = CountingUtxos::new(kit.chain.store());
    let update = pool
        .update_for_tip_change(&change, &utxos, kit.chain.height() + 1, NOW + 10)
        .expect("memory store");
    assert!(
        utxos.take() >= POOL - 2,
        "every pool transaction is checked again"
    );
    assert_eq!(set(update.returned), set([spends[0].txid(), winner.txid()]));
    assert_eq!(pool.len(), POOL);
    pool.assert_consistent();
}
