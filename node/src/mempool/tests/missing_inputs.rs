//! Byzantine finding 9: a transaction with a missing input is free to send, so it must be
//! cheap to turn away: no store read per output, none at all when sent again.

use super::*;
use crate::mempool::missing::ALREADY_KNOWN_PROBES;

/// Spends the genesis coins of accounts 1..=9 (valid, but all signed by the wrong key) and,
/// last, an outpoint that never existed, into `outputs` outputs.
fn spam(kit: &TestChain, outputs: usize) -> Transaction {
    let mut coins: Vec<(OutPoint, Coin)> = (1..=9).map(|i| kit.genesis_coin(i)).collect();
    let nowhere = OutPoint {
        txid: Txid(cairn_core::Hash256([7; 32])),
        vout: 0,
    };
    coins.push((nowhere, coins[0].1));
    kit.spend(&coins, &kit.key(1), vec![pay(&kit.key(1), 1_000); outputs])
}

#[test]
fn a_missing_input_costs_a_bounded_number_of_reads_and_none_when_sent_again() {
    let (kit, mut pool) = default_setup();
    let tx = spam(&kit, 1_000);
    let utxos = CountingUtxos::new(kit.chain.store());
    let height = kit.chain.height() + 1;
    let err = pool
        .accept(tx.clone(), &utxos, height, NOW)
        .expect_err("missing input");
    assert_eq!(err.reject_reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(
        utxos.take(),
        tx.inputs.len() + ALREADY_KNOWN_PROBES,
        "each input up to the missing one, then a few outputs"
    );

    // Sent again (or any transaction spending the same outpoint): no input is read.
    for _ in 0..3 {
        let err = pool
            .accept(tx.clone(), &utxos, height, NOW)
            .expect_err("still missing");
        assert_eq!(err.missing_outpoint(), Some(tx.inputs[9].prevout));
        assert_eq!(utxos.take(), ALREADY_KNOWN_PROBES);
    }
    let verdict = pool.test_accept(&tx, &utxos, height);
    assert_eq!(
        verdict.expect_err("missing").missing_outpoint(),
        Some(tx.inputs[9].prevout)
    );
    assert_eq!(utxos.take(), ALREADY_KNOWN_PROBES);
    assert!(pool.is_empty());
}

#[test]
fn an_input_found_missing_is_looked_up_again_once_a_parent_arrives_or_a_block_connects() {
    let (mut kit, mut pool) = default_setup();
    let key = kit.key(1);
    let parent = at_rate(&kit, 1, 2);
    let child = child_at_rate(&kit, &parent, &key, 2);
    assert_eq!(
        reason(accept(&mut pool, &kit, &child)),
        "bad-txns-inputs-missingorspent"
    );
    accept(&mut pool, &kit, &parent).expect("parent");
    accept(&mut pool, &kit, &child).expect("the parent is in the pool now");

    let key2 = kit.key(2);
    let confirmed = at_rate(&kit, 2, 2);
    let orphan = child_at_rate(&kit, &confirmed, &key2, 2);
    assert_eq!(
        reason(accept(&mut pool, &kit, &orphan)),
        "bad-txns-inputs-missingorspent"
    );
    let tip = kit.chain.tip().hash;
    let fees = Amount::from_base(2 * simple_size(&kit));
    let (_, report) = mine_reporting(&mut kit, &tip, vec![confirmed], fees, 1);
    let change = report.tip_changed.expect("extends the tip");
    pool.update_for_tip_change(&change, kit.chain.store(), kit.chain.height() + 1, NOW)
        .expect("memory store");
    accept(&mut pool, &kit, &orphan).expect("its parent is confirmed now");
}
