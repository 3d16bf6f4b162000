//! `send` and `double-spend`: building, submitting and recording payments.

use super::{Console, Session, print_json, save};
use crate::coin_selection::FeePolicy;
use crate::coins::{ChainInfo, CoinSnapshot, WalletCoin};
use crate::keystore::{SentKind, SentRecord};
use crate::rpc::{RpcClient, RpcError};
use crate::wallet::{BuiltTx, ConflictRequest, PaymentRequest, Wallet};
use anyhow::bail;
use cairn_core::Amount;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The node's answer to `sendrawtransaction`.
struct Answer {
    node: String,
    result: Result<String, RpcError>,
}

impl Answer {
    fn accepted(&self) -> bool {
        self.result.is_ok()
    }

    fn text(&self) -> String {
        match &self.result {
            Ok(_) => "accepted".to_owned(),
            Err(RpcError::Rpc { code, message }) => format!("rejected: {message} (code {code})"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn to_json(&self) -> Value {
        match &self.result {
            Ok(txid) => json!({"node": self.node, "accepted": true, "result": txid}),
            Err(RpcError::Rpc { code, message }) => json!({
                "node": self.node, "accepted": false,
                "error": {"code": code, "message": message},
            }),
            Err(e) => {
                json!({"node": self.node, "accepted": false, "error": {"message": e.to_string()}})
            }
        }
    }
}

/// Submits `built`; only an HTTP or transport failure is an `Err` here, a rejection is an
/// answer.
fn submit(rpc: &RpcClient, built: &BuiltTx) -> anyhow::Result<Answer> {
    let result = match rpc.call("sendrawtransaction", json!([built.hex()])) {
        Ok(Value::String(txid)) => Ok(txid),
        Ok(other) => Ok(other.to_string()),
        Err(e) if e.is_answer() => Err(e),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "submitting transaction {} to {}",
                built.txid,
                rpc.url()
            )));
        }
    };
    Ok(Answer {
        node: rpc.url().to_owned(),
        result,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long the inputs of a payment this wallet sent stay reserved even when the node
/// asked does not know the payment: long enough for it to propagate from the node it was
/// sent to, short enough that a dropped payment does not lock its coins for good.
pub const PENDING_RESERVATION_SECS: u64 = 600;

/// The coins a new transaction may spend: the node's spendable set minus the inputs of
/// this wallet's recent payments (which a node other than the one they went to may not
/// have seen yet). Returns them and the value held back.
fn spendable(wallet: &Wallet, snapshot: &CoinSnapshot) -> (Vec<WalletCoin>, Amount) {
    let now = unix_now();
    let reserved: std::collections::BTreeSet<String> = wallet
        .sent()
        .iter()
        .filter(|r| {
            r.kind == SentKind::Payment
                && r.accepted
                && now.saturating_sub(r.time) < PENDING_RESERVATION_SECS
        })
        .flat_map(|r| r.inputs.iter().cloned())
        .collect();
    let (held, free): (Vec<WalletCoin>, Vec<WalletCoin>) = snapshot
        .spendable()
        .into_iter()
        .partition(|c| reserved.contains(&c.outpoint.to_string()));
    let held = Amount::from_base(held.iter().map(|c| c.output.amount.to_base()).sum());
    (free, held)
}

/// Adds to a build failure how much value the reservation of recent payments held back.
fn explain_held(e: crate::wallet::WalletError, held: Amount) -> anyhow::Error {
    let e = anyhow::Error::new(e);
    if held == Amount::ZERO {
        return e;
    }
    e.context(format!(
        "{held} more is in coins that this wallet's payments of the last {} minutes spend and this node has not seen; they are held back so as not to spend them twice",
        PENDING_RESERVATION_SECS / 60
    ))
}

fn record(wallet: &Wallet, built: &BuiltTx, kind: SentKind, answer: &Answer) -> SentRecord {
    SentRecord {
        txid: built.txid.to_string(),
        time: unix_now(),
        kind,
        to: wallet.address(&built.recipient.address),
        amount: built.recipient.amount.to_base(),
        fee: built.fee.to_base(),
        size: built.size,
        inputs: built.spent.iter().map(|c| c.outpoint.to_string()).collect(),
        change: built
            .change
            .map(|c| (wallet.address(&c.address), c.amount.to_base())),
        node: answer.node.clone(),
        accepted: answer.accepted(),
        answer: match &answer.result {
            Ok(txid) => txid.clone(),
            Err(e) => e.to_string(),
        },
        hex: built.hex(),
    }
}

fn built_json(wallet: &Wallet, built: &BuiltTx) -> Value {
    json!({
        "txid": built.txid.to_string(),
        "to": wallet.address(&built.recipient.address),
        "amount": built.recipient.amount,
        "fee": built.fee,
        "size": built.size,
        "change": built.change.map(|c| json!({"address": wallet.address(&c.address), "amount": c.amount})),
        "inputs": built.spent.iter().map(|c| c.outpoint.to_string()).collect::<Vec<_>>(),
        "hex": built.hex(),
    })
}

fn describe(wallet: &Wallet, built: &BuiltTx) -> String {
    let mut s = format!(
        "pays {} to {}, fee {} ({} bytes)",
        built.recipient.amount,
        wallet.address(&built.recipient.address),
        built.fee,
        built.size
    );
    if let Some(change) = built.change {
        s.push_str(&format!(
            ", change {} to {}",
            change.amount,
            wallet.address(&change.address)
        ));
    }
    s
}

pub(super) fn cmd_send(
    ctx: &Session,
    console: &mut Console<'_>,
    to: &str,
    amount: u64,
    fee: FeePolicy,
) -> anyhow::Result<()> {
    let to = ctx.parse_address("--to", to)?;
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet) = ctx.open(console)?;
    let rpc = ctx.client()?;
    let snapshot = CoinSnapshot::fetch(&rpc, wallet.params(), &wallet.pubkey_hashes())?;
    let (coins, held) = spendable(&wallet, &snapshot);
    let built = wallet
        .build_payment(
            &coins,
            &PaymentRequest {
                to,
                amount: Amount::from_base(amount),
                fee,
            },
        )
        .map_err(|e| explain_held(e, held))?;
    // The change key must be on disk before anything pays to it.
    save(&keystore, &wallet)?;
    let answer = submit(&rpc, &built)?;
    if let Err(e) = &answer.result {
        let reason = match e {
            RpcError::Rpc { message, .. } => message.clone(),
            other => other.to_string(),
        };
        bail!(
            "the node at {} rejected transaction {}: {reason}",
            answer.node,
            built.txid
        );
    }
    wallet.record_sent(record(&wallet, &built, SentKind::Payment, &answer));
    save(&keystore, &wallet)?;
    if ctx.json {
        return print_json(console, &built_json(&wallet, &built));
    }
    writeln!(console.out, "{}", built.txid)?;
    writeln!(console.out, "{}", describe(&wallet, &built))?;
    Ok(())
}

/// What `double-spend` was asked for.
pub(super) struct DoubleSpendArgs<'a> {
    pub(super) to: &'a str,
    pub(super) to2: &'a str,
    pub(super) amount: u64,
    pub(super) node: Option<&'a str>,
    pub(super) node2: Option<&'a str>,
    pub(super) cookie2: Option<&'a Path>,
    pub(super) replace: bool,
    pub(super) fee: FeePolicy,
}

pub(super) fn cmd_double_spend(
    ctx: &Session,
    console: &mut Console<'_>,
    args: DoubleSpendArgs<'_>,
) -> anyhow::Result<()> {
    let to = ctx.parse_address("--to", args.to)?;
    let to2 = ctx.parse_address("--to2", args.to2)?;
    let node1 = match args.node {
        Some(spec) => ctx.node(spec, ctx.cookie.as_deref())?,
        None => ctx.client()?,
    };
    let node2 = match args.node2 {
        Some(spec) => ctx.node(spec, args.cookie2.or(ctx.cookie.as_deref()))?,
        None => node1.clone(),
    };
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet) = ctx.open(console)?;
    let snapshot = CoinSnapshot::fetch(&node1, wallet.params(), &wallet.pubkey_hashes())?;
    let (mut coins, held) = spendable(&wallet, &snapshot);
    let cross_node = node2.url() != node1.url();
    if cross_node {
        ChainInfo::fetch(&node2, wallet.params())?;
        // The other node may not have the parent of an unconfirmed coin: it would answer
        // "missing inputs" instead of taking part in the double spend.
        coins.retain(WalletCoin::is_confirmed);
    }
    let pair = wallet
        .build_conflicting_pair(
            &coins,
            &ConflictRequest {
                to,
                to2,
                amount: Amount::from_base(args.amount),
                fee: args.fee,
                replace: args.replace,
            },
        )
        .map_err(|e| explain_held(e, held))
        .map_err(|e| {
            if cross_node {
                e.context("a double spend across two nodes spends only confirmed coins (both nodes know them); wait for a block")
            } else {
                e
            }
        })?;
    save(&keystore, &wallet)?;

    let first = submit(&node1, &pair.first)?;
    wallet.record_sent(record(
        &wallet,
        &pair.first,
        SentKind::DoubleSpendFirst,
        &first,
    ));
    save(&keystore, &wallet)?;
    let second = match submit(&node2, &pair.second) {
        Ok(answer) => answer,
        Err(e) => {
            writeln!(
                console.err,
                "first {} -> {}: {}",
                pair.first.txid,
                first.node,
                first.text()
            )?;
            return Err(e);
        }
    };
    wallet.record_sent(record(
        &wallet,
        &pair.second,
        SentKind::DoubleSpendSecond,
        &second,
    ));
    save(&keystore, &wallet)?;

    if ctx.json {
        let mut a = built_json(&wallet, &pair.first);
        a["answer"] = first.to_json();
        let mut b = built_json(&wallet, &pair.second);
        b["answer"] = second.to_json();
        return print_json(
            console,
            &json!({
                "coin": {"outpoint": pair.coin.outpoint.to_string(), "amount": pair.coin.output.amount},
                "replace": args.replace,
                "first": a,
                "second": b,
            }),
        );
    }
    let out = &mut console.out;
    writeln!(
        out,
        "coin    {} ({})",
        pair.coin.outpoint, pair.coin.output.amount
    )?;
    for (name, built, answer) in [
        ("first ", &pair.first, &first),
        ("second", &pair.second, &second),
    ] {
        writeln!(out, "{name}  {}  {}", built.txid, describe(&wallet, built))?;
        writeln!(out, "        -> {}: {}", answer.node, answer.text())?;
    }
    Ok(())
}
