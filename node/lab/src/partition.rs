//! `cairn testnet partition | eclipse | heal`: cutting links and restoring the topology.
//!
//! Each command records what it cut in `devnet.json` and lets [`peering::apply`] make the
//! nodes' bans and connections match, so they compose with any topology: a partition keeps the
//! topology's links inside each group, `heal` restores exactly the topology.
//!
//! What `--one-way A B` can and cannot do with bans: a libp2p connection carries both
//! directions, and a ban refuses the whole connection, so no ban makes A's messages stop at B
//! while B's still reach A. `partition --one-way A B` therefore closes the direct link A–B from
//! B's side only: B bans A and refuses it, A bans nobody and keeps trying to reconnect (its
//! log shows the refusals). Neither sends the other anything directly; what they learn of each
//! other still arrives around the cut, through other peers. Shaping one direction of a link
//! (delays, loss, a true one-way cut) is message-level, not a ban.

use crate::peering;
use crate::testnet::node_named;
use anyhow::{Context, bail};
use cairn_rpc::{Devnet, Eclipse};
use std::collections::BTreeSet;
use std::path::Path;

/// Refuses a new cut while an incompatible one is in place.
fn check_no_eclipse(devnet: &Devnet) -> anyhow::Result<()> {
    match &devnet.eclipse {
        Some(e) => bail!("{} is eclipsed by {}; `heal` first", e.node, e.by),
        None => Ok(()),
    }
}

/// `partition GROUP...`: bans across groups (both directions) until `heal`.
pub fn partition(dir: &Path, groups: &[String]) -> anyhow::Result<()> {
    let mut devnet = Devnet::read(dir)?;
    check_no_eclipse(&devnet)?;
    if !devnet.partition.is_empty() {
        bail!("the testnet is already partitioned; `heal` it first");
    }
    let groups: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            g.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .collect();
    let mut seen = BTreeSet::new();
    for name in groups.iter().flatten() {
        node_named(&devnet, name)?;
        if !seen.insert(name.clone()) {
            bail!("{name} is in more than one group");
        }
    }
    let unplaced: Vec<String> = devnet
        .names()
        .into_iter()
        .filter(|n| !seen.contains(n))
        .collect();
    if !unplaced.is_empty() {
        bail!(
            "every node must be in a group; not placed: {}",
            unplaced.join(", ")
        );
    }
    devnet.partition = groups.clone();
    devnet.write(dir)?;
    peering::apply(&devnet)?;
    let shown: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
    println!("partitioned: {}", shown.join(" | "));
    Ok(())
}

/// `partition --one-way A B`: B refuses A (see the module docs for what that means).
pub fn one_way(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    let [from, to] = names else {
        bail!("partition --one-way takes two node names: A B (A's messages stop reaching B)");
    };
    let mut devnet = Devnet::read(dir)?;
    check_no_eclipse(&devnet)?;
    node_named(&devnet, from)?;
    node_named(&devnet, to)?;
    if from == to {
        bail!("partition --one-way needs two different nodes");
    }
    let cut = [from.clone(), to.clone()];
    if !devnet.one_way_cuts.contains(&cut) {
        devnet.one_way_cuts.push(cut);
    }
    devnet.write(dir)?;
    peering::apply(&devnet)?;
    println!(
        "cut {from} → {to}: {to} refuses {from}, so the direct link is closed (traffic between \
         them goes around through other peers); `heal` restores it"
    );
    Ok(())
}

/// `eclipse NAME [--by NODE]`: every peer of NAME replaced by NODE (default: the next node).
pub fn eclipse(dir: &Path, name: &str, by: Option<&str>) -> anyhow::Result<()> {
    let mut devnet = Devnet::read(dir)?;
    check_no_eclipse(&devnet)?;
    if !devnet.partition.is_empty() || !devnet.one_way_cuts.is_empty() {
        bail!("the testnet is partitioned; `heal` it before an eclipse");
    }
    node_named(&devnet, name)?;
    let names = devnet.names();
    if names.len() < 2 {
        bail!("an eclipse needs at least two nodes");
    }
    let by = match by {
        Some(by) => {
            node_named(&devnet, by)?;
            if by == name {
                bail!("{name} cannot eclipse itself: --by names another node");
            }
            by.to_owned()
        }
        None => {
            let index = names
                .iter()
                .position(|n| n == name)
                .context("checked above")?;
            names[(index + 1) % names.len()].clone()
        }
    };
    devnet.eclipse = Some(Eclipse {
        node: name.to_owned(),
        by: by.clone(),
    });
    devnet.write(dir)?;
    peering::apply(&devnet)?;
    println!("eclipsed {name}: its only peer is {by} until `heal`");
    Ok(())
}

/// `heal`: lifts partitions, one-way cuts and eclipses and restores the topology.
pub fn heal(dir: &Path) -> anyhow::Result<()> {
    let mut devnet = Devnet::read(dir)?;
    devnet.partition.clear();
    devnet.one_way_cuts.clear();
    devnet.eclipse = None;
    devnet.write(dir)?;
    peering::apply(&devnet)?;
    let topology = devnet.topology.as_deref().unwrap_or("full");
    println!(
        "healed: {} nodes connected as {}",
        devnet.nodes.len(),
        if topology == "full" {
            "a full mesh"
        } else {
            topology
        }
    );
    Ok(())
}
