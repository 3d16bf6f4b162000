//! Making the links between a testnet's nodes what `devnet.json` says: its topology, minus
//! what a partition, a one-way cut or an eclipse takes away.
//!
//! [`plan`] turns the file into two facts per node, pure and testable: which testnet nodes it
//! bans, and which links must be up. [`apply`] makes them true over RPC the way a user could
//! (`listbanned` to see what is there, `setban add`/`remove` for the difference, `addnode`
//! for the links) and waits until every node's peers are exactly its planned neighbours.
//! Bans it set are told apart from bans for misbehaviour by their reason, so healing never
//! lifts a ban a node gave a Byzantine peer.

use crate::testnet::{client, peer_ids};
use crate::topology::{Link, Topology, neighbours};
use anyhow::{Context, bail};
use cairn_rpc::{Devnet, RpcClient};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long links may take to form or break.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(60);
/// Bans the lab sets last until it lifts them; `setban` needs a duration, so ten years.
pub const LAB_BAN_SECS: u64 = 10 * 365 * 24 * 3600;
/// The reason a node records for a ban set over `setban` (and so by the lab).
const MANUAL_BAN_REASON: &str = "manually banned";

/// What the links between the nodes should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// For each node (by index), the indices of the nodes it bans.
    pub bans: Vec<BTreeSet<usize>>,
    /// Links that must be up.
    pub links: BTreeSet<Link>,
}

/// The index of the node called `name`.
fn index_of(devnet: &Devnet, name: &str) -> anyhow::Result<usize> {
    devnet
        .nodes
        .iter()
        .position(|n| n.name == name)
        .with_context(|| format!("devnet.json names {name}, which is not one of its nodes"))
}

/// The topology's links as `devnet.json` records them (each node's `peers`); a file without
/// them was written when every testnet was a full mesh.
pub fn topology_links(devnet: &Devnet) -> anyhow::Result<BTreeSet<Link>> {
    let n = devnet.nodes.len();
    if devnet.nodes.iter().all(|node| node.peers.is_none()) {
        return Ok(Topology::Full.links(n, 0)?);
    }
    let mut links = BTreeSet::new();
    for (a, node) in devnet.nodes.iter().enumerate() {
        for peer in node.peers.iter().flatten() {
            let b = index_of(devnet, peer)?;
            if a != b {
                links.insert((a.min(b), a.max(b)));
            }
        }
    }
    Ok(links)
}

/// The bans and links `devnet` describes (see the module docs).
pub fn plan(devnet: &Devnet) -> anyhow::Result<Plan> {
    let n = devnet.nodes.len();
    let topology = topology_links(devnet)?;
    let mut links = topology.clone();
    let mut bans: Vec<BTreeSet<usize>> = (0..n)
        .map(|a| {
            let mine = neighbours(&topology, a);
            (0..n).filter(|b| *b != a && !mine.contains(b)).collect()
        })
        .collect();
    if !devnet.partition.is_empty() {
        let mut group = vec![usize::MAX; n];
        for (g, names) in devnet.partition.iter().enumerate() {
            for name in names {
                group[index_of(devnet, name)?] = g;
            }
        }
        for a in 0..n {
            for b in 0..n {
                if a != b && group[a] != group[b] {
                    bans[a].insert(b);
                    links.remove(&(a.min(b), a.max(b)));
                }
            }
        }
    }
    for [from, to] in &devnet.one_way_cuts {
        let (a, b) = (index_of(devnet, from)?, index_of(devnet, to)?);
        bans[b].insert(a);
        links.remove(&(a.min(b), a.max(b)));
    }
    if let Some(eclipse) = &devnet.eclipse {
        let (victim, by) = (
            index_of(devnet, &eclipse.node)?,
            index_of(devnet, &eclipse.by)?,
        );
        bans[victim] = (0..n).filter(|b| *b != victim && *b != by).collect();
        bans[by].remove(&victim);
        links.retain(|&(a, b)| a != victim && b != victim);
        links.insert((victim.min(by), victim.max(by)));
    }
    Ok(Plan { bans, links })
}

/// Testnet nodes `client` bans with the lab's reason, and the node indices it bans otherwise.
fn current_bans(devnet: &Devnet, client: &RpcClient) -> anyhow::Result<BTreeSet<usize>> {
    let listed = client.call("listbanned", json!([]))?;
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ban| ban["reason"].as_str() == Some(MANUAL_BAN_REASON))
        .filter_map(|ban| {
            let peer = ban["peer_id"].as_str()?;
            devnet.nodes.iter().position(|n| n.peer_id == peer)
        })
        .collect())
}

/// Makes the bans and links of [`plan`] true and waits until they hold.
pub fn apply(devnet: &Devnet) -> anyhow::Result<()> {
    let plan = plan(devnet)?;
    let clients: Vec<RpcClient> = devnet
        .nodes
        .iter()
        .map(client)
        .collect::<anyhow::Result<_>>()?;
    for (a, c) in clients.iter().enumerate() {
        let name = &devnet.nodes[a].name;
        let now = current_bans(devnet, c).with_context(|| format!("listing {name}'s bans"))?;
        for &b in plan.bans[a].difference(&now) {
            c.call(
                "setban",
                json!([devnet.nodes[b].peer_id, "add", LAB_BAN_SECS]),
            )
            .with_context(|| format!("{name} banning {}", devnet.nodes[b].name))?;
        }
        for &b in now.difference(&plan.bans[a]) {
            c.call("setban", json!([devnet.nodes[b].peer_id, "remove"]))
                .with_context(|| format!("{name} lifting its ban of {}", devnet.nodes[b].name))?;
        }
    }
    for &(a, b) in &plan.links {
        clients[a]
            .call("addnode", json!([devnet.nodes[b].p2p, "add"]))
            .with_context(|| {
                let (a, b) = (&devnet.nodes[a].name, &devnet.nodes[b].name);
                format!("{a} connecting to {b}")
            })?;
    }
    wait_for_links(devnet, &clients, &plan.links)
}

/// Waits until every node's testnet peers are exactly its neighbours under `links`.
fn wait_for_links(
    devnet: &Devnet,
    clients: &[RpcClient],
    links: &BTreeSet<Link>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + LINK_TIMEOUT;
    loop {
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        for (a, c) in clients.iter().enumerate() {
            let peers = peer_ids(c)?;
            let wanted = neighbours(links, a);
            for (b, node) in devnet.nodes.iter().enumerate() {
                let name = || format!("{}→{}", devnet.nodes[a].name, node.name);
                match (wanted.contains(&b), peers.contains(&node.peer_id)) {
                    (true, false) => missing.push(name()),
                    (false, true) => extra.push(name()),
                    _ => {}
                }
            }
        }
        if missing.is_empty() && extra.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the links did not settle within {LINK_TIMEOUT:?}: missing [{}], unwanted [{}]",
                missing.join(", "),
                extra.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_rpc::{DevnetNode, Eclipse};

    fn devnet(n: usize, topology: Topology) -> Devnet {
        let links = topology.links(n, 0).unwrap();
        let name = |i: usize| format!("node{i}");
        Devnet {
            nodes: (0..n)
                .map(|i| DevnetNode {
                    name: name(i),
                    peer_id: format!("peer{i}"),
                    peers: Some(neighbours(&links, i).into_iter().map(name).collect()),
                    ..Default::default()
                })
                .collect(),
            topology: Some(topology.to_string()),
            ..Default::default()
        }
    }

    fn set(items: &[usize]) -> BTreeSet<usize> {
        items.iter().copied().collect()
    }

    #[test]
    fn a_topology_bans_exactly_the_non_neighbours() {
        let plan = plan(&devnet(4, Topology::Line)).unwrap();
        assert_eq!(plan.links, BTreeSet::from([(0, 1), (1, 2), (2, 3)]));
        assert_eq!(
            plan.bans,
            vec![set(&[2, 3]), set(&[3]), set(&[0]), set(&[0, 1])]
        );
        let mut old = devnet(3, Topology::Line);
        for node in &mut old.nodes {
            node.peers = None;
        }
        let plan = super::plan(&old).unwrap();
        assert_eq!(
            plan.links,
            Topology::Full.links(3, 0).unwrap(),
            "old files are meshes"
        );
        assert!(plan.bans.iter().all(BTreeSet::is_empty));
    }

    #[test]
    fn a_partition_of_a_ring_keeps_only_the_links_inside_each_group() {
        let mut net = devnet(6, Topology::Ring);
        net.partition = vec![
            vec!["node0".into(), "node1".into(), "node2".into()],
            vec!["node3".into(), "node4".into(), "node5".into()],
        ];
        let plan = plan(&net).unwrap();
        assert_eq!(plan.links, BTreeSet::from([(0, 1), (1, 2), (3, 4), (4, 5)]));
        assert_eq!(
            plan.bans[0],
            set(&[2, 3, 4, 5]),
            "non-neighbour and other group"
        );
        assert_eq!(plan.bans[3], set(&[0, 1, 2, 5]));
    }

    #[test]
    fn a_one_way_cut_is_a_ban_on_the_receiving_side_only() {
        let mut net = devnet(3, Topology::Full);
        net.one_way_cuts = vec![["node0".into(), "node1".into()]];
        let plan = plan(&net).unwrap();
        assert_eq!(plan.bans, vec![set(&[]), set(&[0]), set(&[])]);
        assert_eq!(plan.links, BTreeSet::from([(0, 2), (1, 2)]));
    }

    #[test]
    fn an_eclipse_replaces_every_peer_by_one_node() {
        let mut net = devnet(5, Topology::Star);
        net.eclipse = Some(Eclipse {
            node: "node0".into(),
            by: "node3".into(),
        });
        let plan = plan(&net).unwrap();
        assert_eq!(plan.links, BTreeSet::from([(0, 3)]));
        assert_eq!(plan.bans[0], set(&[1, 2, 4]));
        assert_eq!(
            plan.bans[3],
            set(&[1, 2, 4]),
            "node3 may talk to node0 alone"
        );
        assert_eq!(
            plan.bans[1],
            set(&[2, 3, 4]),
            "the others keep their star bans"
        );
        let mut net = devnet(4, Topology::Line);
        net.eclipse = Some(Eclipse {
            node: "node1".into(),
            by: "node3".into(),
        });
        let plan = super::plan(&net).unwrap();
        assert_eq!(plan.links, BTreeSet::from([(1, 3), (2, 3)]));
        assert_eq!(
            plan.bans[3],
            set(&[0]),
            "a non-neighbour made the only peer"
        );
    }

    #[test]
    fn unknown_names_in_the_file_are_reported() {
        let mut net = devnet(2, Topology::Full);
        net.one_way_cuts = vec![["node0".into(), "node9".into()]];
        assert!(plan(&net).unwrap_err().to_string().contains("node9"));
    }
}
