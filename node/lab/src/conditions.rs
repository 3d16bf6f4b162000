//! The network conditions `cairn testnet up` sets: each node's hash rate, the initial
//! difficulty that turns the total into a block interval, and the topology.

use crate::genesis::{GENESIS_FILE, interval_genesis, write_genesis};
use crate::topology::{Link, Topology};
use anyhow::{Context, bail};
use cairn_core::ChainParams;
use cairn_miner::{format_hashrate, parse_hashrate};
use cairn_rpc::Devnet;
use clap::Args;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `up`'s flags for hash power and topology.
#[derive(Debug, Clone, Args, Default)]
pub struct Conditions {
    /// Cap every node's mining at RATE hashes per second (250k, 1.5M; implies mining), or
    /// only the nodes named: NAME=RATE,... (repeatable; unnamed nodes do not mine unless --mine)
    #[arg(long, value_name = "RATE | NAME=RATE,...")]
    pub hashrate: Vec<String>,
    /// With --hashrate: write DIR/genesis.json whose initial target makes the rates' sum find
    /// a block every SECS seconds on average (retargeting keeps that interval)
    #[arg(long, value_name = "SECS", requires = "hashrate")]
    pub target_interval: Option<u32>,
    /// Who peers with whom: full, line, ring, star or random:K
    #[arg(long, default_value = "full", value_parser = parse_topology)]
    pub topology: Topology,
    /// Seed of random:K's peer choice [default: 0]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

fn parse_topology(text: &str) -> Result<Topology, String> {
    text.parse()
        .map_err(|e: crate::topology::TopologyError| e.to_string())
}

/// Who mines how fast: `--hashrate RATE` for all, or `NAME=RATE,...` for some.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashRates {
    /// No caps.
    #[default]
    Uncapped,
    /// The same cap on every node.
    All(u64),
    /// Caps on the nodes named; the others are not capped (and mine only with `--mine`).
    PerNode(BTreeMap<String, u64>),
}

impl HashRates {
    /// Parses the `--hashrate` values given (none, one RATE, or NAME=RATE lists).
    pub fn parse(values: &[String]) -> anyhow::Result<HashRates> {
        let entries: Vec<&str> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        match entries.as_slice() {
            [] => Ok(HashRates::Uncapped),
            [one] if !one.contains('=') => {
                Ok(HashRates::All(parse_hashrate(one).context("--hashrate")?))
            }
            _ => {
                let mut rates = BTreeMap::new();
                for entry in entries {
                    let Some((name, rate)) = entry.split_once('=') else {
                        bail!(
                            "--hashrate {entry:?}: give one RATE for every node or NAME=RATE \
                             for each node, not both"
                        );
                    };
                    let rate =
                        parse_hashrate(rate).with_context(|| format!("--hashrate {entry}"))?;
                    if rates.insert(name.trim().to_owned(), rate).is_some() {
                        bail!("--hashrate names {} twice", name.trim());
                    }
                }
                Ok(HashRates::PerNode(rates))
            }
        }
    }

    /// The cap of each of `names`, in order; fails on a name that is not a node.
    pub fn per_node(&self, names: &[String]) -> anyhow::Result<Vec<Option<u64>>> {
        if let HashRates::PerNode(rates) = self
            && let Some(unknown) = rates.keys().find(|name| !names.contains(name))
        {
            bail!(
                "--hashrate names {unknown}, which is not a node (nodes: {})",
                names.join(", ")
            );
        }
        Ok(names
            .iter()
            .map(|name| match self {
                HashRates::Uncapped => None,
                HashRates::All(rate) => Some(*rate),
                HashRates::PerNode(rates) => rates.get(name).copied(),
            })
            .collect())
    }
}

/// [`Conditions`] worked out for `n` nodes.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Each node's cap.
    pub rates: Vec<Option<u64>>,
    /// The topology.
    pub topology: Topology,
    /// Its seed, for `random:K` only.
    pub seed: Option<u64>,
    /// Its links.
    pub links: BTreeSet<Link>,
}

impl Conditions {
    /// Checks the flags against the node names and draws the topology.
    pub fn resolve(&self, names: &[String]) -> anyhow::Result<Resolved> {
        let rates = HashRates::parse(&self.hashrate)?.per_node(names)?;
        if self.seed.is_some() && !self.topology.is_random() {
            bail!("--seed only applies to --topology random:K");
        }
        let seed = self.topology.is_random().then(|| self.seed.unwrap_or(0));
        let links = self
            .topology
            .links(names.len(), seed.unwrap_or(0))
            .with_context(|| format!("--topology {}", self.topology))?;
        Ok(Resolved {
            rates,
            topology: self.topology,
            seed,
            links,
        })
    }

    /// With `--target-interval`: writes `DIR/genesis.json` for the total of `rates` on top of
    /// `base` and returns its path; without, `None`. A testnet resumed with the same flags
    /// finds the same file; one that would change the network of existing chains is refused.
    pub fn interval_genesis(
        &self,
        dir: &Path,
        base: &ChainParams,
        rates: &[Option<u64>],
    ) -> anyhow::Result<Option<PathBuf>> {
        let Some(secs) = self.target_interval else {
            return Ok(None);
        };
        let total = rates
            .iter()
            .flatten()
            .try_fold(0u64, |sum, r| sum.checked_add(*r));
        let total = total.context("the --hashrate rates add up to more than 2^64 H/s")?;
        let path = dir.join(GENESIS_FILE);
        let existing = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| ChainParams::from_json(&text).ok());
        // A resumed testnet keeps its genesis time, hence its genesis block.
        let genesis_time = match &existing {
            Some(params) => params.config.genesis_time,
            None => now_secs(),
        };
        let config = interval_genesis(&base.config, total, secs, genesis_time)?;
        if existing.is_some_and(|params| params.config != config) && dir.join("node0").exists() {
            bail!(
                "{} holds the network of this testnet's chains, and --hashrate/--target-interval \
                 now ask for another; `down` it and remove {} to start over",
                path.display(),
                dir.display()
            );
        }
        Ok(Some(write_genesis(dir, &config)?))
    }
}

/// Seconds since the Unix epoch, now (the lab may read the clock; consensus code may not).
fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// `cairn testnet hashrate NAME RATE`: changes a node's cap live (`sethashrate`), which also
/// switches its mining on; `0` stops its hashing.
pub fn set_hashrate(dir: &Path, name: &str, rate: &str) -> anyhow::Result<()> {
    let rate = parse_hashrate(rate).context("RATE")?;
    let mut devnet = Devnet::read(dir)?;
    let node = crate::testnet::node_named(&devnet, name)?;
    crate::testnet::client(node)?
        .call("sethashrate", json!([rate]))
        .with_context(|| format!("setting {name}'s hash rate"))?;
    if let Some(node) = devnet.nodes.iter_mut().find(|n| n.name == name) {
        node.hashrate = Some(rate);
    }
    devnet.write(dir)?;
    println!("{name} mines at most {} H/s", format_hashrate(rate));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i}")).collect()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_rate_caps_every_node_and_named_rates_cap_those_named() {
        assert_eq!(
            HashRates::parse(&[]).unwrap().per_node(&names(2)).unwrap(),
            vec![None, None]
        );
        assert_eq!(
            HashRates::parse(&strings(&["250k"]))
                .unwrap()
                .per_node(&names(3))
                .unwrap(),
            vec![Some(250_000); 3]
        );
        let per_node = HashRates::parse(&strings(&["node0=300k,node2=100k", "node3=0"])).unwrap();
        assert_eq!(
            per_node.per_node(&names(4)).unwrap(),
            vec![Some(300_000), None, Some(100_000), Some(0)]
        );
    }

    #[test]
    fn bad_hashrates_are_explained() {
        let err =
            |values: &[&str]| format!("{:#}", HashRates::parse(&strings(values)).unwrap_err());
        assert!(err(&["fast"]).contains("bad hash rate"));
        assert!(err(&["node0=1k,2k"]).contains("not both"));
        assert!(err(&["node0=1k", "node0=2k"]).contains("twice"));
        assert!(err(&["node0=1q"]).contains("node0=1q"));
        let unknown = HashRates::parse(&strings(&["node7=1k"]))
            .unwrap()
            .per_node(&names(2))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("node7") && unknown.contains("node0, node1"),
            "{unknown}"
        );
    }

    #[test]
    fn resolving_draws_the_topology_and_checks_the_seed() {
        let conditions = Conditions {
            topology: Topology::Random { k: 2 },
            seed: Some(9),
            ..Default::default()
        };
        let resolved = conditions.resolve(&names(5)).unwrap();
        assert_eq!(resolved.seed, Some(9));
        assert_eq!(
            resolved.links,
            Topology::Random { k: 2 }.links(5, 9).unwrap()
        );
        let seeded_line = Conditions {
            topology: Topology::Line,
            seed: Some(1),
            ..Default::default()
        };
        assert!(seeded_line.resolve(&names(3)).is_err());
        let too_dense = Conditions {
            topology: Topology::Random { k: 3 },
            ..Default::default()
        };
        let err = format!("{:#}", too_dense.resolve(&names(3)).unwrap_err());
        assert!(err.contains("random:3"), "{err}");
    }

    #[test]
    fn the_interval_genesis_is_written_once_and_not_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let base = ChainParams::devnet();
        let conditions = Conditions {
            hashrate: strings(&["node0=300k,node1=100k"]),
            target_interval: Some(2),
            ..Default::default()
        };
        let rates = vec![Some(300_000), Some(100_000)];
        let path = conditions
            .interval_genesis(dir.path(), &base, &rates)
            .unwrap()
            .unwrap();
        let params = ChainParams::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let per_block = cairn_core::Target::from_compact(params.initial_bits)
            .unwrap()
            .work()
            .as_f64();
        assert!((per_block / 800_000.0 - 1.0).abs() < 0.01, "{per_block}");
        let age = i64::from(now_secs()) - i64::from(params.config.genesis_time);
        assert!(
            (0..60).contains(&age),
            "the genesis is made now, not {age} s ago"
        );
        std::fs::create_dir(dir.path().join("node0")).unwrap();
        assert!(
            conditions
                .interval_genesis(dir.path(), &base, &rates)
                .is_ok()
        );
        let faster = vec![Some(600_000), Some(100_000)];
        let err = conditions
            .interval_genesis(dir.path(), &base, &faster)
            .unwrap_err()
            .to_string();
        assert!(err.contains("start over"), "{err}");
        assert_eq!(
            Conditions::default()
                .interval_genesis(dir.path(), &base, &rates)
                .unwrap(),
            None
        );
    }
}
