//! The files through which nodes and tools find each other: `DATADIR/node.json`, written by a
//! node once it is ready, and `DIR/devnet.json`, written by `cairn testnet up`. Both are
//! written atomically (a temporary file renamed over the old one), so a reader never sees
//! half a file.

use crate::shaping::LinkShaping;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a contract file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed (most often: it does not exist yet).
    #[error("cannot read {path}: {source}{hint}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
        /// What probably went wrong, for the user.
        hint: String,
    },
    /// The content is not what the contract says.
    #[error("{path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, hint: String) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
        hint,
    })?;
    serde_json::from_str(&text).map_err(|source| FileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let tmp = path.with_extension("json.tmp");
    let write_err = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).expect("contract types always serialise");
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// What a node records in `DATADIR/node.json` once it is ready (INTERFACE: `{"rpc", "p2p",
/// "peer_id", "pid"}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// RPC address, `127.0.0.1:PORT`.
    pub rpc: String,
    /// P2P listen multiaddrs.
    pub p2p: Vec<String>,
    /// libp2p peer id.
    pub peer_id: String,
    /// Process id of the node.
    pub pid: u32,
    /// Prometheus metrics address `127.0.0.1:PORT`, when the node serves metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

impl NodeInfo {
    /// `DATADIR/node.json`.
    pub fn path(datadir: &Path) -> PathBuf {
        datadir.join("node.json")
    }

    /// Reads `DATADIR/node.json`.
    pub fn read(datadir: &Path) -> Result<NodeInfo, FileError> {
        let hint = format!(
            " (is a cairn node running with --datadir {}?)",
            datadir.display()
        );
        read_json(&NodeInfo::path(datadir), hint)
    }

    /// Writes `DATADIR/node.json` atomically.
    pub fn write(&self, datadir: &Path) -> Result<(), FileError> {
        write_json_atomic(&NodeInfo::path(datadir), self)
    }

    /// The RPC URL, `http://ADDR`.
    pub fn rpc_url(&self) -> String {
        if self.rpc.contains("://") {
            self.rpc.clone()
        } else {
            format!("http://{}", self.rpc)
        }
    }
}

/// One node in `devnet.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DevnetNode {
    /// `nodeK`.
    pub name: String,
    /// Its datadir.
    pub datadir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub rpc_url: String,
    /// Its cookie file.
    pub cookie_file: PathBuf,
    /// Its P2P multiaddr with `/p2p/ID`.
    pub p2p: String,
    /// Its peer id.
    pub peer_id: String,
    /// Process id.
    pub pid: u32,
    /// `http://127.0.0.1:PORT/metrics`, when the node serves metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// Its hash-rate cap in hashes per second (`cairn node --hashrate`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<u64>,
    /// The names of the nodes it peers with in the testnet's topology; absent in files
    /// written before topologies existed, which were full meshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// Its Byzantine modes (`cairn testnet up --byzantine NAME=MODE,...`), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<String>,
}

/// A dev key in `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevKey {
    /// `devK`.
    pub name: String,
    /// Address.
    pub address: String,
    /// Secret key (public on purpose: dev keys are deterministic, like anvil's).
    pub secret_key_hex: String,
}

/// `DIR/devnet.json`: what `cairn testnet up` started, for users and tools to find the nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Devnet {
    /// The nodes.
    pub nodes: Vec<DevnetNode>,
    /// The dev keys.
    pub dev_keys: Vec<DevKey>,
    /// Genesis file the nodes use (absent: the embedded dev network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<PathBuf>,
    /// Current partition groups (empty when healed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition: Vec<Vec<String>>,
    /// How the nodes mine: `continuous`, `interval:SECS` or `off`.
    #[serde(default)]
    pub mining: String,
    /// The shaped links (`cairn testnet link`, `up --latency`), one per direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSetting>,
    /// Who peers with whom: `full`, `line`, `ring`, `star` or `random:K` (absent: `full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
    /// The seed `random:K` drew its peers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Direct links cut by `partition --one-way A B`, as `[A, B]` pairs, until `heal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_way_cuts: Vec<[String; 2]>,
    /// The node eclipsed by `eclipse`, and the one node it may still talk to, until `heal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eclipse: Option<Eclipse>,
}

/// The shaping of one directed link of a testnet, `from` → `to`: what `from` sends `to` is
/// delayed by `latency_ms` ± `jitter_ms` and capped at `bandwidth_kbit` (0: no cap), and
/// `to` drops `loss_pct` % of the blocks and transactions it receives from `from`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkSetting {
    /// The sending node's name.
    pub from: String,
    /// The receiving node's name.
    pub to: String,
    /// Delay, jitter and cap of what `from` sends; loss of what `to` receives from it.
    #[serde(flatten)]
    pub shape: LinkShaping,
}

/// An eclipse in `devnet.json`: every peer of `node` replaced by `by`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Eclipse {
    /// The eclipsed node.
    pub node: String,
    /// Its only peer while eclipsed.
    pub by: String,
}

impl Devnet {
    /// `DIR/devnet.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("devnet.json")
    }

    /// Reads `DIR/devnet.json`.
    pub fn read(dir: &Path) -> Result<Devnet, FileError> {
        let hint = format!(" (has `cairn testnet --dir {} up` run?)", dir.display());
        read_json(&Devnet::path(dir), hint)
    }

    /// Writes `DIR/devnet.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), FileError> {
        write_json_atomic(&Devnet::path(dir), self)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&DevnetNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The nodes' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_round_trips_and_gives_an_http_url() {
        let dir = tempfile::tempdir().unwrap();
        let info: NodeInfo =
            serde_json::from_str(r#"{"rpc":"127.0.0.1:4242","p2p":[],"peer_id":"x","pid":7}"#)
                .unwrap();
        assert_eq!(info.rpc_url(), "http://127.0.0.1:4242");
        info.write(dir.path()).unwrap();
        assert_eq!(NodeInfo::read(dir.path()).unwrap(), info);
        let text = std::fs::read_to_string(NodeInfo::path(dir.path())).unwrap();
        assert!(
            !text.contains("metrics"),
            "absent metrics are not written: {text}"
        );
    }

    #[test]
    fn devnet_files_without_topology_or_hashrates_still_parse() {
        let old = r#"{"nodes": [{"name": "node0", "datadir": "/d", "rpc_url": "http://127.0.0.1:1",
            "cookie_file": "/d/.cookie", "p2p": "/ip4/127.0.0.1/tcp/2", "peer_id": "x", "pid": 3}],
            "dev_keys": [], "mining": "off"}"#;
        let devnet: Devnet = serde_json::from_str(old).unwrap();
        assert_eq!(devnet.topology, None);
        assert_eq!(devnet.nodes[0].hashrate, None);
        assert_eq!(devnet.nodes[0].peers, None);
        let text = serde_json::to_string(&devnet).unwrap();
        for absent in [
            "topology",
            "hashrate",
            "peers",
            "seed",
            "one_way_cuts",
            "eclipse",
        ] {
            assert!(
                !text.contains(absent),
                "{absent} written although unset: {text}"
            );
        }
        let mut new = devnet.clone();
        new.topology = Some("random:2".into());
        new.seed = Some(7);
        new.nodes[0].hashrate = Some(250_000);
        new.nodes[0].peers = Some(vec![]);
        new.eclipse = Some(Eclipse {
            node: "node0".into(),
            by: "node1".into(),
        });
        let back: Devnet = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn missing_files_name_the_file_and_the_likely_cause() {
        let dir = tempfile::tempdir().unwrap();
        let err = NodeInfo::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("node.json") && err.contains("is a cairn node running"),
            "{err}"
        );
        let err = Devnet::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("devnet.json") && err.contains("testnet"),
            "{err}"
        );
        std::fs::write(Devnet::path(dir.path()), "{").unwrap();
        assert!(matches!(
            Devnet::read(dir.path()),
            Err(FileError::Parse { .. })
        ));
    }
}
