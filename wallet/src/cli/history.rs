//! `history`: the wallet's payments and what the chain made of them.

use super::{Console, Session, print_json};
use crate::coins::{CoinSnapshot, WalletCoin};
use crate::keystore::{SentKind, SentRecord};
use crate::rpc::{RpcClient, codes};
use serde_json::{Value, json};
use std::io::Write;

/// Where a sent transaction stands, as the node knows it.
fn tx_status(rpc: &RpcClient, record: &SentRecord) -> anyhow::Result<(String, Value)> {
    if !record.accepted {
        return Ok((
            format!("rejected by {}: {}", record.node, record.answer),
            json!({"state": "rejected"}),
        ));
    }
    match rpc.call("getrawtransaction", json!([record.txid, true])) {
        Ok(tx) => {
            let confirmations = tx.get("confirmations").and_then(Value::as_i64).unwrap_or(0);
            match tx.get("blockhash").and_then(Value::as_str) {
                Some(block) if confirmations > 0 => Ok((
                    format!("confirmed ({confirmations} confirmations)"),
                    json!({"state": "confirmed", "confirmations": confirmations, "blockhash": block}),
                )),
                _ => Ok(("in the mempool".to_owned(), json!({"state": "mempool"}))),
            }
        }
        Err(e) if e.code() == Some(codes::INVALID_ADDRESS_OR_KEY) => Ok((
            "unknown to the node (replaced, conflicted or dropped)".to_owned(),
            json!({"state": "unknown"}),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn cmd_history(ctx: &Session, console: &mut Console<'_>) -> anyhow::Result<()> {
    let (_, wallet) = ctx.open(console)?;
    let rpc = ctx.client()?;
    let snapshot = CoinSnapshot::fetch(&rpc, wallet.params(), &wallet.pubkey_hashes())?;
    let mut sent = Vec::new();
    for record in wallet.sent() {
        let (text, status) = tx_status(&rpc, record)?;
        sent.push((record, text, status));
    }
    let received: Vec<&WalletCoin> = snapshot
        .confirmed
        .values()
        .chain(snapshot.mempool_received.values())
        .collect();
    let kind_of = |coin: &WalletCoin| {
        wallet
            .key_for(&coin.output.address)
            .map_or("?", |k| k.kind().as_str())
    };

    if ctx.json {
        let sent: Vec<Value> = sent
            .iter()
            .map(|(record, _, status)| {
                let mut v = serde_json::to_value(record).expect("records serialise");
                v["status"] = status.clone();
                v
            })
            .collect();
        let received: Vec<Value> = received
            .iter()
            .map(|c| {
                json!({
                    "txid": c.outpoint.txid.to_string(),
                    "vout": c.outpoint.vout,
                    "amount": c.output.amount,
                    "address": wallet.address(&c.output.address),
                    "kind": kind_of(c),
                    "height": c.height,
                    "coinbase": c.coinbase,
                    "mature": snapshot.is_mature(c),
                    "spent_in_mempool": snapshot.mempool_spent.contains(&c.outpoint),
                })
            })
            .collect();
        return print_json(
            console,
            &json!({"height": snapshot.tip_height, "sent": sent, "received": received}),
        );
    }
    let out = &mut console.out;
    writeln!(out, "sent by this wallet:")?;
    if sent.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for (record, status, _) in &sent {
        writeln!(
            out,
            "  {}  {}  {:<19}  -{} to {}, fee {}: {status}",
            utc(record.time),
            record.txid,
            match record.kind {
                SentKind::Payment => "payment",
                SentKind::DoubleSpendFirst => "double-spend first",
                SentKind::DoubleSpendSecond => "double-spend second",
            },
            record.amount,
            record.to,
            record.fee
        )?;
    }
    writeln!(
        out,
        "coins held (unspent outputs to the wallet; the node indexes no spent history):"
    )?;
    if received.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for coin in received {
        let mut notes = vec![kind_of(coin).to_owned()];
        match coin.height {
            Some(h) => notes.push(format!("height {h}")),
            None => notes.push("in the mempool".into()),
        }
        if coin.coinbase {
            notes.push(if snapshot.is_mature(coin) {
                "coinbase".into()
            } else {
                format!(
                    "immature coinbase until height {}",
                    snapshot.spendable_at(coin)
                )
            });
        }
        if snapshot.mempool_spent.contains(&coin.outpoint) {
            notes.push("being spent".into());
        }
        writeln!(
            out,
            "  {}  +{} to {} ({})",
            coin.outpoint,
            coin.output.amount,
            wallet.address(&coin.output.address),
            notes.join(", ")
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (Howard Hinnant's civil-from-days).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01:01");
    }
}
