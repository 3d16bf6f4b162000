//! Byzantine finding 9: replace-by-fee's relay-fee rule (Bitcoin Core's rule 4) and its cap
//! on evictions (rule 5).

use super::*;

#[test]
fn a_replacement_must_pay_for_its_own_relay_on_top_of_what_it_evicts() {
    let (kit, mut pool) = default_setup();
    let size = simple_size(&kit);
    let original = at_rate(&kit, 1, 10);
    accept(&mut pool, &kit, &original).expect("accepted");

    // A better fee rate and more fee than the original, but one base unit short of paying
    // for its own bytes at the minimum relay fee rate on top.
    let key = kit.key(1);
    let stingy = spend(&kit, kit.genesis_coin(1), &key, 11 * size - 1);
    let err = accept(&mut pool, &kit, &stingy).expect_err("relays its bytes for free");
    assert_eq!(
        err,
        MempoolError::Conflict {
            txid: stingy.txid(),
            conflict: original.txid(),
            rule: ReplacementRule::InsufficientRelayFee {
                additional: Amount::from_base(size - 1),
                required: Amount::from_base(size),
            },
        }
    );
    assert_eq!(err.reject_reason(), "insufficient fee");
    assert_eq!(pool.txids(), vec![original.txid()]);

    let enough = spend(&kit, kit.genesis_coin(1), &key, 11 * size);
    let accepted = accept(&mut pool, &kit, &enough).expect("pays for its relay");
    assert_eq!(accepted.replaced, vec![original.txid()]);
}

#[test]
fn a_replacement_may_evict_at_most_a_hundred_transactions_descendants_included() {
    let (mut kit, mut pool) = default_setup();
    let limit = MempoolConfig::default().max_replacements;
    assert_eq!(limit, 100);
    let key = kit.key(1);
    // 101 confirmed coins of dev account 1, each spent by its own pool transaction.
    let (outpoint, coin) = kit.genesis_coin(1);
    let share = coin.output.amount.to_base() / 200;
    let fan = kit.spend(&[(outpoint, coin)], &key, vec![pay(&key, share); limit + 1]);
    let tip = kit.chain.tip().hash;
    let fee = coin.output.amount.to_base() - share * (limit as u64 + 1);
    kit.block_on(&tip, vec![fan.clone()], Amount::from_base(fee));
    let coins: Vec<(OutPoint, Coin)> = (0..=limit as u32).map(|v| output(&fan, v)).collect();
    let spenders: Vec<Transaction> = coins
        .iter()
        .map(|c| spend(&kit, *c, &key, 2 * simple_size(&kit)))
        .collect();
    for tx in &spenders {
        accept(&mut pool, &kit, tx).expect("accepted");
    }
    let child = child_at_rate(&kit, &spenders[0], &key, 2);
    accept(&mut pool, &kit, &child).expect("child");

    let replace = |range: std::ops::Range<usize>| {
        let total: u64 = coins[range.clone()]
            .iter()
            .map(|c| c.1.output.amount.to_base())
            .sum();
        kit.spend(&coins[range], &key, vec![pay(&key, total - 10_000_000)])
    };
    // 100 direct conflicts, one with a child: 101 evictions.
    let too_many = replace(0..limit);
    let err = accept(&mut pool, &kit, &too_many).expect_err("too many evictions");
    assert!(matches!(
        err,
        MempoolError::Conflict {
            rule: ReplacementRule::TooManyReplacements {
                count: 101,
                limit: 100
            },
            ..
        }
    ));
    assert_eq!(err.reject_reason(), "too many potential replacements");
    assert_eq!(pool.len(), limit + 2);

    let hundred = replace(1..limit + 1);
    let accepted = accept(&mut pool, &kit, &hundred).expect("exactly the limit");
    assert_eq!(accepted.replaced.len(), limit);
    assert_eq!(
        set(pool.txids()),
        set([spenders[0].txid(), child.txid(), hundred.txid()])
    );
}
