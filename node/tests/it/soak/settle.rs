//! Settling a soak's acknowledged payments: each must end in the active chain, or lose to a
//! conflicting spend of one of its coins, or descend from a payment that lost that way.

use super::{Payment, SoakReport, converge};
use cairn_rpc::RpcClient;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn confirmed(client: &RpcClient, txid: &str) -> Option<Value> {
    let tx = client.call("getrawtransaction", json!([txid, true])).ok()?;
    (tx["confirmations"].as_u64().unwrap_or(0) > 0).then_some(tx)
}

/// Whether some confirmed transaction other than `p` spent one of `p`'s coins.
fn spent_by_conflict(client: &RpcClient, p: &Payment) -> bool {
    p.inputs.iter().any(|(txid, vout)| {
        let Some(parent) = confirmed(client, txid) else {
            return false;
        };
        let address = parent["vout"][*vout as usize]["address"]
            .as_str()
            .expect("output address")
            .to_owned();
        let utxos = client
            .call("getaddressutxos", json!([address]))
            .expect("getaddressutxos");
        !utxos
            .as_array()
            .expect("array")
            .iter()
            .any(|u| u["txid"].as_str() == Some(txid.as_str()) && u["vout"].as_u64() == Some(*vout))
    })
}

/// Whether `p` is settled on `client`'s active chain: confirmed; or one of its coins was
/// spent by another confirmed transaction (the other half of a double spend won); or it
/// spent an output of an acknowledged payment that lost that way (a descendant of the
/// losing half is invalid too, as in Bitcoin).
fn settled(
    client: &RpcClient,
    p: &Payment,
    by_txid: &BTreeMap<&str, &Payment>,
    depth: usize,
) -> Settled {
    if confirmed(client, &p.txid).is_some() {
        return Settled::Confirmed;
    }
    if spent_by_conflict(client, p) {
        return Settled::Conflicted;
    }
    let conflicted_parent = depth < 64
        && p.inputs.iter().any(|(parent, _)| {
            by_txid.get(parent.as_str()).is_some_and(|parent| {
                settled(client, parent, by_txid, depth + 1) == Settled::Conflicted
            })
        });
    if conflicted_parent {
        Settled::Conflicted
    } else {
        Settled::Pending
    }
}

/// Where an acknowledged payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Confirmed,
    Conflicted,
    Pending,
}

/// What each node knows of a lost payment (for the failure message).
fn whereabouts(clients: &[RpcClient], p: &Payment) -> String {
    let seen: Vec<String> = clients
        .iter()
        .enumerate()
        .map(
            |(k, c)| match c.call("getrawtransaction", json!([p.txid, true])) {
                Ok(tx) => format!(
                    "node{k}: confirmations {}",
                    tx["confirmations"].as_u64().unwrap_or(0)
                ),
                Err(_) => format!("node{k}: unknown"),
            },
        )
        .collect();
    format!("{} spending {:?}: {}", p.txid, p.inputs, seen.join(", "))
}

/// Waits until every acknowledged payment is settled on the converged active chain; fails
/// naming the lost ones.
pub(super) fn settle(clients: &[RpcClient], payments: &[Payment], report: &mut SoakReport) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let by_txid: BTreeMap<&str, &Payment> = payments.iter().map(|p| (p.txid.as_str(), p)).collect();
    loop {
        converge(clients, Duration::from_secs(120)).expect("converged before the final check");
        let states: Vec<Settled> = payments
            .iter()
            .map(|p| settled(&clients[0], p, &by_txid, 0))
            .collect();
        let lost: Vec<&Payment> = payments
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s == Settled::Pending)
            .map(|(p, _)| p)
            .collect();
        if lost.is_empty() {
            report.resolved_by_conflict =
                states.iter().filter(|s| **s == Settled::Conflicted).count();
            return;
        }
        if Instant::now() >= deadline {
            let detail: Vec<String> = lost.iter().map(|p| whereabouts(clients, p)).collect();
            panic!(
                "{} of {} acknowledged payments are in no block of the active chain 300 s \
                 after the last heal, and no conflicting spend is:\n{}",
                lost.len(),
                payments.len(),
                detail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
