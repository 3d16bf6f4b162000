//! `cairn testnet link` and `cairn testnet up --latency`: shaping the links of a testnet.
//!
//! The shaping itself happens inside each node (its transport delays, jitters and caps what
//! it sends a peer; its gossip and sync drop a share of what it receives from one: no root,
//! no kernel module). The lab only says what each node should do, over RPC:
//! `setlinkshaping PEER {latency_ms, jitter_ms, loss_pct, bandwidth_kbit}`.
//!
//! `devnet.json`'s `"links"` holds one [`LinkSetting`] per shaped *direction* A → B, and is
//! the source of truth: after a change, each node touched is told its whole view of the
//! link — delay, jitter and cap from its outgoing setting, loss from the incoming one — so
//! the nodes always match the file. A node restarted by `up` is told again.

use crate::testnet::{client, node_named};
use anyhow::{Context, bail};
use cairn_rpc::Devnet;
use cairn_rpc::files::LinkSetting;
use cairn_rpc::shaping::LinkShaping;
use clap::Args;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;

/// Arguments of `cairn testnet link`.
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// The sending node (`nodeK`)
    pub a: String,
    /// The receiving node (`nodeK`)
    pub b: String,
    /// Added one-way delay, milliseconds
    #[arg(long, value_name = "MS")]
    pub latency: Option<f64>,
    /// ± jitter on the delay, milliseconds
    #[arg(long, value_name = "MS")]
    pub jitter: Option<f64>,
    /// Share of block and transaction messages lost, percent
    #[arg(long, value_name = "PCT")]
    pub loss: Option<f64>,
    /// Bandwidth cap, kbit/s
    #[arg(long, value_name = "KBIT")]
    pub bandwidth: Option<f64>,
    /// Shape A → B only (default: both directions)
    #[arg(long)]
    pub one_way: bool,
    /// Remove the shaping of the link
    #[arg(long, conflicts_with_all = ["latency", "jitter", "loss", "bandwidth"])]
    pub reset: bool,
}

/// The settings of one direction, checked with the contract's bounds (the node's own
/// check), so a bad value fails before any node was changed.
fn setting(from: &str, to: &str, args: &LinkArgs) -> anyhow::Result<LinkSetting> {
    let shape = LinkShaping {
        latency_ms: args.latency.unwrap_or(0.0),
        jitter_ms: args.jitter.unwrap_or(0.0),
        loss_pct: args.loss.unwrap_or(0.0),
        bandwidth_kbit: args.bandwidth.unwrap_or(0.0),
    }
    .validated()
    .map_err(|e| {
        // The flag is the field's name without its unit: `latency_ms` is `--latency`.
        let flag = e.field().split('_').next().unwrap_or_default();
        anyhow::anyhow!("--{flag}: {e}")
    })?;
    Ok(LinkSetting {
        from: from.to_owned(),
        to: to.to_owned(),
        shape,
    })
}

/// Replaces the setting of `from` → `to` in `links` (removing it when unshaped).
fn replace(links: &mut Vec<LinkSetting>, new: LinkSetting) {
    links.retain(|l| !(l.from == new.from && l.to == new.to));
    if !new.shape.is_none() {
        links.push(new);
        links.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
    }
}

fn find<'a>(links: &'a [LinkSetting], from: &str, to: &str) -> Option<&'a LinkSetting> {
    links.iter().find(|l| l.from == from && l.to == to)
}

/// Tells node `x` its whole view of its link with `y`: delay, jitter and cap of `x → y`,
/// loss of `y → x`.
fn push(devnet: &Devnet, x: &str, y: &str) -> anyhow::Result<()> {
    let (node, peer) = (node_named(devnet, x)?, node_named(devnet, y)?);
    let out = find(&devnet.links, x, y);
    let inbound = find(&devnet.links, y, x);
    let out = out.map_or(LinkShaping::NONE, |l| l.shape);
    let settings = LinkShaping {
        loss_pct: inbound.map_or(0.0, |l| l.shape.loss_pct),
        ..out
    };
    client(node)?
        .call("setlinkshaping", json!([peer.peer_id, settings]))
        .with_context(|| format!("telling {x} the shaping of its link with {y}"))?;
    Ok(())
}

/// Tells both ends of every pair in `pairs` what the file says.
fn push_pairs(devnet: &Devnet, pairs: &BTreeSet<(String, String)>) -> anyhow::Result<()> {
    for (x, y) in pairs {
        push(devnet, x, y)?;
        push(devnet, y, x)?;
    }
    Ok(())
}

fn unordered(x: &str, y: &str) -> (String, String) {
    if x <= y {
        (x.to_owned(), y.to_owned())
    } else {
        (y.to_owned(), x.to_owned())
    }
}

/// How a setting reads for people.
fn describe(link: &LinkSetting) -> String {
    let s = &link.shape;
    let mut parts = Vec::new();
    if s.latency_ms > 0.0 || s.jitter_ms > 0.0 {
        parts.push(if s.jitter_ms > 0.0 {
            format!("{} ms ± {} ms", s.latency_ms, s.jitter_ms)
        } else {
            format!("{} ms", s.latency_ms)
        });
    }
    if s.loss_pct > 0.0 {
        parts.push(format!("{} % loss", s.loss_pct));
    }
    if s.bandwidth_kbit > 0.0 {
        parts.push(format!("{} kbit/s", s.bandwidth_kbit));
    }
    if parts.is_empty() {
        "unshaped".into()
    } else {
        parts.join(", ")
    }
}

/// `cairn testnet link A B ...`.
pub fn link(dir: &Path, args: &LinkArgs) -> anyhow::Result<()> {
    let mut devnet = Devnet::read(dir)?;
    node_named(&devnet, &args.a)?;
    node_named(&devnet, &args.b)?;
    if args.a == args.b {
        bail!("a link joins two different nodes, not {} to itself", args.a);
    }
    let given = [args.latency, args.jitter, args.loss, args.bandwidth];
    if !args.reset && given.iter().all(Option::is_none) {
        bail!("nothing to set: give --latency, --jitter, --loss or --bandwidth, or --reset");
    }
    let mut directions = vec![(args.a.clone(), args.b.clone())];
    if !args.one_way {
        directions.push((args.b.clone(), args.a.clone()));
    }
    let mut new = Vec::new();
    for (from, to) in &directions {
        // With --reset no value is given (clap refuses both): every setting is 0.
        new.push(setting(from, to, args)?);
    }
    for s in &new {
        replace(&mut devnet.links, s.clone());
    }
    push_pairs(&devnet, &BTreeSet::from([unordered(&args.a, &args.b)]))?;
    devnet.write(dir)?;
    for s in &new {
        println!("{} → {}: {}", s.from, s.to, describe(s));
    }
    Ok(())
}

/// The links `devnet.json` in `dir` lists now (none when there is no testnet yet): what a
/// restarted testnet should be told again.
pub fn previous(dir: &Path) -> Vec<LinkSetting> {
    Devnet::read(dir).map(|d| d.links).unwrap_or_default()
}

/// After `up`: shapes the links `previous` listed (a resumed testnet) and then, with
/// `latency`, every directed link with that delay; records them in `devnet.json`.
pub fn after_up(
    dir: &Path,
    previous: Vec<LinkSetting>,
    latency: Option<f64>,
) -> anyhow::Result<()> {
    if previous.is_empty() && latency.is_none() {
        return Ok(());
    }
    let mut devnet = Devnet::read(dir)?;
    let names = devnet.names();
    for s in previous {
        if names.contains(&s.from) && names.contains(&s.to) {
            replace(&mut devnet.links, s);
        }
    }
    if let Some(ms) = latency {
        for from in &names {
            for to in names.iter().filter(|to| *to != from) {
                let args = LinkArgs {
                    a: from.clone(),
                    b: to.clone(),
                    latency: Some(ms),
                    jitter: None,
                    loss: None,
                    bandwidth: None,
                    one_way: true,
                    reset: false,
                };
                let mut s = setting(from, to, &args)?;
                if let Some(old) = find(&devnet.links, from, to) {
                    s.shape = LinkShaping {
                        latency_ms: ms,
                        ..old.shape
                    };
                }
                replace(&mut devnet.links, s);
            }
        }
    }
    let pairs: BTreeSet<(String, String)> = devnet
        .links
        .iter()
        .map(|l| unordered(&l.from, &l.to))
        .collect();
    push_pairs(&devnet, &pairs)?;
    devnet.write(dir)?;
    println!(
        "{} directed links shaped (see \"links\" in devnet.json)",
        devnet.links.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(latency: Option<f64>, loss: Option<f64>) -> LinkArgs {
        LinkArgs {
            a: "node0".into(),
            b: "node1".into(),
            latency,
            jitter: None,
            loss,
            bandwidth: None,
            one_way: false,
            reset: false,
        }
    }

    #[test]
    fn settings_are_checked_before_any_node_is_told() {
        let refused = |a: &LinkArgs| setting("a", "b", a).unwrap_err().to_string();
        assert!(refused(&args(Some(-1.0), None)).starts_with("--latency: latency_ms"));
        assert!(setting("a", "b", &args(None, Some(100.5))).is_err());
        assert!(setting("a", "b", &args(Some(f64::NAN), None)).is_err());
        let mut low = args(None, None);
        low.bandwidth = Some(0.5);
        assert!(refused(&low).starts_with("--bandwidth: bandwidth_kbit"));
        let s = setting("a", "b", &args(Some(20.0), Some(5.0))).unwrap();
        assert_eq!(
            (s.shape.latency_ms, s.shape.loss_pct, s.shape.jitter_ms),
            (20.0, 5.0, 0.0)
        );
        assert_eq!(describe(&s), "20 ms, 5 % loss");
    }

    #[test]
    fn a_direction_is_replaced_and_an_unshaped_one_removed() {
        let mut links = Vec::new();
        replace(
            &mut links,
            setting("b", "a", &args(Some(5.0), None)).unwrap(),
        );
        replace(
            &mut links,
            setting("a", "b", &args(Some(10.0), None)).unwrap(),
        );
        replace(
            &mut links,
            setting("a", "b", &args(Some(30.0), None)).unwrap(),
        );
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].from, "a", "sorted");
        assert_eq!(find(&links, "a", "b").unwrap().shape.latency_ms, 30.0);
        replace(&mut links, setting("a", "b", &args(None, None)).unwrap());
        assert!(find(&links, "a", "b").is_none());
        assert_eq!(links.len(), 1);
    }
}
