//! `cairn experiment double-spend`: an attacker node with hash share q against a merchant
//! node with 1 − q. Each trial, on real nodes and real transactions:
//!
//! 1. the attacker is partitioned from the merchant (`cairn testnet partition`);
//! 2. it signs two spends of one coin, mines the one paying itself into a private block
//!    (the pre-mined block of Rosenfeld's model), then pays the merchant with the other;
//! 3. the runner draws who finds each next block and calls `generate 1` there; the
//!    merchant accepts once its node shows the payment with z confirmations;
//! 4. the attacker publishes (`heal`) as soon as the merchant has accepted and its branch
//!    is longer, or gives up `--give-up` blocks behind;
//! 5. success is read from the merchant's node after the nodes agree: the attacker's
//!    spend confirmed, the payment gone.
//!
//! With the pre-mined block, "longer than the merchant's branch" is Rosenfeld's "catch up",
//! so the rate is measured against his exact formula, with Nakamoto's approximation beside.

use super::net::{Net, NodeSetup, testnet_cli};
use super::stats::{Lottery, wilson95};
use super::{Common, Point, num, params, progress};
use crate::theory::{attacker_success, rosenfeld_double_spend};
use anyhow::{Context, bail};
use cairn_core::{Amount, OutPoint, PubkeyHash, TxOut};
use cairn_wallet::{ConflictRequest, FeePolicy, KeyKind, Wallet, WalletCoin};
use clap::Args;
use serde_json::{Value, json};

/// How the blocks are found, for the report.
pub const METHOD: &str = "real nodes (merchant + attacker, partitioned while the attacker mines, regtest); \
the runner draws each block's finder from q and --seed and calls `generate 1` on it; success read from the \
merchant's node after healing; ci95 by Wilson's score interval";

const MERCHANT: usize = 0;
const ATTACKER: usize = 1;
/// The merchant's payment in each trial, in base units.
const PAYMENT: u64 = 1_000_000;

/// Arguments of `cairn experiment double-spend`.
#[derive(Debug, Args)]
pub struct DoubleSpendArgs {
    /// The attacker's hash shares (below 0.5), one series each
    #[arg(long, value_delimiter = ',', default_values_t = [0.25])]
    pub q: Vec<f64>,
    /// Confirmations the merchant waits for, one point each
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4])]
    pub z: Vec<u32>,
    /// Trials per point. The defaults (3 points × 200 trials) take about 3-4 minutes on 2
    /// cores and give a ci95 of about ±0.05-0.07 on the success rate
    #[arg(long, default_value_t = 200)]
    pub trials: u64,
    /// The attacker gives up this many blocks behind; the measured rate can fall below
    /// the formula's (which never gives up) by at most (q/p)^D
    #[arg(long, value_name = "D", default_value_t = 8)]
    pub give_up: u32,
}

struct Attacker {
    wallet: Wallet,
    coin: WalletCoin,
    merchant: PubkeyHash,
}

/// What one trial gave.
struct Trial {
    /// The merchant's node confirmed the attacker's spend.
    success: bool,
    /// The runner's block count said the attacker would win.
    predicted: bool,
}

/// Runs every (q, z) point on one testnet.
pub fn run(args: &DoubleSpendArgs, common: &Common) -> anyhow::Result<Vec<Point>> {
    if args.q.is_empty() || args.q.iter().any(|q| !(*q > 0.0 && *q < 0.5)) {
        bail!("--q values must be in (0, 0.5)");
    }
    if args.z.is_empty() || args.z.iter().any(|z| !(1..=20).contains(z)) {
        bail!("--z values must be between 1 and 20");
    }
    if !(1..=100_000).contains(&args.trials) {
        bail!("--trials must be between 1 and 100000");
    }
    if !(1..=50).contains(&args.give_up) {
        bail!("--give-up must be between 1 and 50");
    }
    let nodes = [
        NodeSetup {
            strategy: None,
            pays_dev: 0,
        },
        NodeSetup {
            strategy: None,
            pays_dev: 2,
        },
    ];
    let net = Net::up(common.point_dir(0).as_deref(), &nodes, &[])?;
    let mut attacker = Attacker::new(&net)?;
    let mut lottery = Lottery::new(common.seed);
    let total = (args.q.len() * args.z.len()) as u64 * args.trials;
    let bar = progress(total, "double-spend trials");
    let mut points = Vec::new();
    for &q in &args.q {
        for &z in &args.z {
            let mut successes = 0u64;
            let mut disagreements = 0u64;
            for _ in 0..args.trials {
                let t = trial(&net, &mut attacker, &mut lottery, q, z, args.give_up)
                    .with_context(|| format!("q {q}, z {z}"))?;
                successes += u64::from(t.success);
                disagreements += u64::from(t.success != t.predicted);
                bar.inc(1);
            }
            points.push(point(q, z, args, successes, disagreements));
        }
    }
    bar.finish_and_clear();
    Ok(points)
}

fn point(q: f64, z: u32, args: &DoubleSpendArgs, successes: u64, disagreements: u64) -> Point {
    let rosenfeld = rosenfeld_double_spend(q, z);
    let bias = (q / (1.0 - q)).powi(args.give_up as i32);
    let mut note = format!(
        "{successes} of {} succeeded; giving up {} behind costs at most {bias:.5}",
        args.trials, args.give_up
    );
    if disagreements > 0 {
        note.push_str(&format!(
            "; in {disagreements} trials the nodes' outcome differed from the block count"
        ));
    }
    Point {
        params: params(&[
            ("q", num(q)),
            ("z", json!(z)),
            ("trials", json!(args.trials)),
        ]),
        measured: successes as f64 / args.trials as f64,
        theory: json!({"nakamoto": num(attacker_success(q, u64::from(z))), "rosenfeld": num(rosenfeld)}),
        ci95: wilson95(successes, args.trials),
        reference: rosenfeld,
        replay: None,
        note: Some(note),
    }
}

impl Attacker {
    /// The attacker's wallet holds dev account 1 (its genesis coin funds every trial); the
    /// merchant is paid at dev account 3.
    fn new(net: &Net) -> anyhow::Result<Attacker> {
        let mut wallet = Wallet::new(net.params.clone());
        let (key, _) = wallet.import_dev(1)?;
        let merchant_addr = &net.params.config.dev_accounts[3].address;
        let merchant = net.params.parse_address(merchant_addr)?;
        let utxos: Vec<Value> =
            net.clients[MERCHANT].call_as("getaddressutxos", json!([net.params.address(&key)]))?;
        let first = utxos
            .iter()
            .find(|u| u["coinbase"] == false)
            .context("dev1 has no genesis coin")?;
        let coin = WalletCoin {
            outpoint: OutPoint {
                txid: first["txid"]
                    .as_str()
                    .context("utxo txid")?
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad txid in getaddressutxos"))?,
                vout: first["vout"].as_u64().context("utxo vout")? as u32,
            },
            output: TxOut {
                amount: Amount::from_base(first["amount"].as_u64().context("utxo amount")?),
                address: key,
            },
            height: Some(0),
            coinbase: false,
        };
        Ok(Attacker {
            wallet,
            coin,
            merchant,
        })
    }
}

fn confirmations(net: &Net, k: usize, txid: &str) -> anyhow::Result<i64> {
    match net.clients[k].call("getrawtransaction", json!([txid, true])) {
        Ok(v) => Ok(v["confirmations"].as_i64().unwrap_or(0)),
        Err(e) if e.is_answer() => Ok(0),
        Err(e) => Err(e).with_context(|| format!("getrawtransaction {txid} on node{k}")),
    }
}

fn trial(
    net: &Net,
    attacker: &mut Attacker,
    lottery: &mut Lottery,
    q: f64,
    z: u32,
    give_up: u32,
) -> anyhow::Result<Trial> {
    net.converge()?;
    testnet_cli(
        net.dir(),
        &["partition".into(), "node0".into(), "node1".into()],
    )?;
    let to2 = attacker
        .wallet
        .generate_key(KeyKind::Receive, "double-spend")?;
    let pair = attacker.wallet.build_conflicting_pair(
        &[attacker.coin],
        &ConflictRequest {
            to: attacker.merchant,
            to2,
            amount: Amount::from_base(PAYMENT),
            fee: FeePolicy::default(),
            replace: false,
        },
    )?;
    let (pay, steal) = (pair.first, pair.second);
    net.clients[ATTACKER].call("sendrawtransaction", json!([steal.hex()]))?;
    net.generate(ATTACKER)?;
    if confirmations(net, ATTACKER, &steal.txid.to_string())? < 1 {
        bail!("the attacker's pre-mined block does not hold its spend");
    }
    net.clients[MERCHANT].call("sendrawtransaction", json!([pay.hex()]))?;
    let (mut honest, mut ours) = (0u32, 1u32);
    let predicted = loop {
        if honest >= z && ours > honest {
            break true;
        }
        if honest + 1 >= ours + give_up {
            break false;
        }
        let (finder, _) = lottery.next_finder(&[1.0 - q, q]);
        if finder == 0 {
            net.generate(MERCHANT)?;
            honest += 1;
            if honest == z {
                let conf = confirmations(net, MERCHANT, &pay.txid.to_string())?;
                if conf < i64::from(z) {
                    bail!(
                        "the merchant shows {conf} confirmations of the payment after {z} blocks"
                    );
                }
            }
        } else {
            net.generate(ATTACKER)?;
            ours += 1;
        }
    };
    testnet_cli(net.dir(), &["heal".into()])?;
    net.converge()?;
    let success = confirmations(net, MERCHANT, &steal.txid.to_string())? > 0;
    let paid = confirmations(net, MERCHANT, &pay.txid.to_string())? > 0;
    if success == paid {
        bail!(
            "after healing the merchant confirms {} of the two conflicting spends",
            if paid { "both" } else { "neither" }
        );
    }
    let winner = if success { &steal } else { &pay };
    attacker.coin = WalletCoin {
        outpoint: OutPoint {
            txid: winner.txid,
            vout: 1,
        },
        output: winner.tx.outputs[1],
        height: Some(0),
        coinbase: false,
    };
    Ok(Trial { success, predicted })
}
