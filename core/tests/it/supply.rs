//! The money supply: the UTXO set never holds more than the premine plus the subsidies paid
//! so far, a coinbase can only burn, never mint, and `max_money` is exactly the premine
//! plus every subsidy the schedule will ever pay.

use crate::support::*;
use cairn_core::testkit::TestChain;
use cairn_core::{Amount, BlockError, ChainParams, Coin, OutPoint};
use proptest::collection::vec;
use proptest::prelude::*;

/// Regtest with a halving every 5 blocks, so a short chain crosses several halvings.
fn fast_halving() -> ChainParams {
    regtest_with(|c| c.halving_interval = 5)
}

fn premine(params: &ChainParams) -> u128 {
    params.genesis_block.txs[0]
        .outputs
        .iter()
        .map(|o| u128::from(o.amount.to_base()))
        .sum()
}

/// Σ subsidy(h) for h in 1..=height, summed block by block.
fn subsidies_through(params: &ChainParams, height: u32) -> u128 {
    (1..=height)
        .map(|h| u128::from(params.subsidy(h).to_base()))
        .sum()
}

#[test]
fn max_money_is_the_premine_plus_every_subsidy_the_schedule_will_ever_pay() {
    let networks = [
        ChainParams::regtest(),
        ChainParams::devnet(),
        fast_halving(),
        regtest_with(|c| {
            c.initial_subsidy = 1 << 61;
            c.halving_interval = 3;
        }),
        regtest_with(|c| {
            c.initial_subsidy = 1;
            c.halving_interval = 1;
        }),
    ];
    for params in networks {
        let interval = params.halving_interval;
        // Era by era, checking the subsidy is constant within each; only heights from 1 on
        // count (the genesis block pays the premine, not a subsidy).
        let mut total = 0u128;
        for era in 0..64u32 {
            let start = era * interval;
            let last = start + (interval - 1);
            let subsidy = params.subsidy(start);
            assert_eq!(params.subsidy(last), subsidy, "constant within an era");
            assert_eq!(
                params.subsidy(start + interval),
                Amount::from_base(subsidy.to_base() / 2),
                "halves at the next era"
            );
            let first = start.max(1);
            if first <= last {
                total += u128::from(subsidy.to_base()) * u128::from(last - first + 1);
            }
        }
        assert_eq!(
            params.subsidy(64 * interval),
            Amount::ZERO,
            "no tail emission"
        );
        assert_eq!(
            u128::from(params.max_money.to_base()),
            premine(&params) + total,
            "{}: max_money",
            params.network_id
        );
    }
}

#[test]
fn subsidy_halves_every_interval_until_it_reaches_zero() {
    let params = fast_halving();
    let initial = params.initial_subsidy.to_base();
    for era in 0..70u32 {
        let expected = if era >= 64 { 0 } else { initial >> era };
        assert_eq!(params.subsidy(era * 5).to_base(), expected, "era {era}");
        assert_eq!(params.subsidy(era * 5 + 4).to_base(), expected, "era {era}");
    }
}

/// What one block of the random chain does.
#[derive(Debug, Clone)]
struct Step {
    /// How many coins to spend (0–2).
    spends: u8,
    /// Fee per transaction.
    fee: u64,
    /// How much of the fees the coinbase claims (the rest is burned).
    claim: u64,
    /// Also try a coinbase claiming `1 + overclaim` more than allowed (must be rejected).
    overclaim: Option<u64>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    vec(
        (
            0u8..3,
            0u64..2_000_000,
            any::<u64>(),
            // Half the overclaims are by exactly one base unit.
            proptest::option::weighted(0.3, prop_oneof![Just(0u64), 1u64..1_000_000]),
        )
            .prop_map(|(spends, fee, claim, overclaim)| Step {
                spends,
                fee,
                claim,
                overclaim,
            }),
        1..24,
    )
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let params = fast_halving();
    let mut kit = TestChain::new(params.clone());
    let maturity = params.coinbase_maturity;
    let premine = premine(&params);
    let mut wallet: Vec<((OutPoint, Coin), u32)> =
        (1..=3).map(|i| (kit.genesis_coin(i), i)).collect();
    let mut burned = 0u128;
    for step in steps {
        let height = kit.chain.height() + 1;
        let mut txs = Vec::new();
        for _ in 0..step.spends {
            let Some(pos) = wallet
                .iter()
                .position(|((_, c), _)| !c.is_coinbase || height - c.height >= maturity)
            else {
                break;
            };
            let (coin, key) = wallet.remove(pos);
            let amount = coin.1.output.amount.to_base();
            let fee = step.fee.min(amount - 1);
            let tx = pay(&kit, &coin, key, &[amount - fee]);
            wallet.push((coin_of(&tx, 0, height, false), key));
            txs.push(tx);
        }
        let fees: u64 = steps_fees(&txs, &kit, height);
        let claim = step.claim % (fees + 1);
        if let Some(extra) = step.overclaim {
            let greedy =
                unaccepted_block(&mut kit, txs.clone(), Amount::from_base(fees + 1 + extra));
            let error = reject_in(&mut kit, &greedy);
            prop_assert!(
                matches!(error, BlockError::CoinbaseTooLarge { .. }),
                "{:?}",
                error
            );
        }
        let tip = kit.chain.tip().hash;
        let block = kit.block_on(&tip, txs, Amount::from_base(claim));
        wallet.push((coinbase_coin(&block, height), 0));
        burned += u128::from(fees - claim);

        let stats = kit.chain.utxo_stats().expect("memory store cannot fail");
        let schedule = premine + subsidies_through(&params, height);
        let total = u128::from(stats.total_amount.to_base());
        prop_assert!(
            total <= schedule,
            "supply {} above schedule {}",
            total,
            schedule
        );
        prop_assert_eq!(total, schedule - burned);
        prop_assert!(total <= u128::from(params.max_money.to_base()));
    }
    Ok(())
}

/// The fees of `txs` (each spends one coin and pays one output), from the builder's UTXO set.
fn steps_fees(txs: &[cairn_core::Transaction], kit: &TestChain, height: u32) -> u64 {
    let mut created = std::collections::HashMap::new();
    let mut fees = 0;
    for tx in txs {
        let input = tx.inputs[0].prevout;
        let spent = created.remove(&input).unwrap_or_else(|| {
            kit.chain
                .coin(&input)
                .expect("memory store cannot fail")
                .expect("the wallet only holds unspent coins")
                .output
                .amount
                .to_base()
        });
        let paid: u64 = tx.outputs.iter().map(|o| o.amount.to_base()).sum();
        fees += spent - paid;
        created.insert(coin_of(tx, 0, height, false).0, paid);
    }
    fees
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn supply_never_exceeds_the_premine_plus_the_subsidy_schedule(steps in steps()) {
        run(&steps)?;
    }
}
