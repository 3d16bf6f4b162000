//! The scenario file: TOML, read with serde and checked completely before any node starts.
//!
//! ```toml
//! name = "partition-heal"             # optional; default: the file name
//! description = "Two sides mine apart, then reorganise onto the heavier one."
//! duration = "20s"                     # optional: the timeline lasts at least this long
//!
//! [testnet]
//! nodes = 3                            # 1..=10 (one dev account per node)
//! block_time = 2                       # optional: node0 mines one block every 2 s
//! hashrate = "20k"                     # optional: every node mines at most 20 kH/s, or
//! # hashrate = { node0 = "30k", node1 = "10k" }   # only the nodes named mine
//! target_interval = 2                  # with hashrate: the rates' sum finds a block every 2 s
//! topology = "full"                    # full | line | ring | star | random:K
//! latency = 50                         # ms of added one-way delay on every link
//! byzantine = { node2 = "equivocate" } # needs `cairn testnet up --byzantine`
//! seed = 7                             # seed of random:K (also `--seed N`, which wins)
//!
//! [[step]]
//! at = "3s"                            # offset from the start; default: after the previous step
//! action = "partition"
//! groups = [["node0", "node1"], ["node2"]]
//!
//! [[expect]]
//! kind = "converges"
//! within = "30s"
//! ```
//!
//! The network is the regtest one (lowest difficulty, so `generate` is instant): mining
//! nodes need `block_time`, or `hashrate` with `target_interval` (without an interval a capped
//! miner would find a block with nearly every hash). Node K's coinbases pay dev account K,
//! which is how blocks are told apart by miner, and node K's wallet (`DIR/nodeK/wallet.json`)
//! holds dev account K, whose genesis coin pays for `pay` and `double-spend`.
//!
//! Every `[[step]]` has `action` and, optionally, `at` (`"10s"`, `"500ms"`, `"2m"` or a
//! number of seconds) and `name`. Steps run in file order; a step whose `at` has passed runs
//! at once. The actions, with their fields (`?` = optional):
//!
//! | action | fields | what it does |
//! |---|---|---|
//! | `partition` | `groups` (lists of node names, or `"node0,node1"` strings) | `cairn testnet partition` |
//! | `heal` | – | lifts partitions and eclipses |
//! | `eclipse` | `node`, `by`? | every peer of `node` replaced by `by` |
//! | `link` | `a`, `b`, `latency`?, `jitter`?, `loss`?, `bandwidth`?, `one_way`?, `reset`? | `cairn testnet link` |
//! | `hashrate` | `node`, `rate` (`"25k"`, `0`) | changes a node's cap live |
//! | `pay` | `from`, `to` (node or address), `amount`, `fee`? | `cairn wallet send` from `from`'s wallet |
//! | `double-spend` | `name`, `from`?, `to`, `to2`, `amount`, `node`?, `node2`? | two conflicting payments of one coin, sent to `node` and `node2` |
//! | `stop` | `node` | `stop` over RPC |
//! | `kill` | `node` | SIGKILL: no clean shutdown |
//! | `restart` | `node` | starts a stopped or killed node again on its datadir, as it was started, and reconnects it |
//! | `generate` | `node`, `blocks`? (1) | mines blocks on that node now |
//! | `wait` | `until` (`"converged"` or `"height"`), `height`?, `timeout`? (30 s) | waits until every running node agrees on a tip / is at `height` |
//!
//! Every `[[expect]]` has `kind` and, optionally, `name` (default: a description). Kinds:
//!
//! | kind | fields | holds when |
//! |---|---|---|
//! | `converges` | `within` | every running node had the same tip within `within` after the last `heal` or `restart` (after the timeline when there is none); the run waits for it |
//! | `max_reorg` | `depth` | no node reorganised deeper than `depth` blocks |
//! | `double_spend_resolved` | `step` | of the two transactions of double-spend step `step`, exactly one is confirmed, the same one on every running node |
//! | `share` | `node`, `min`?, `max`? | `node` mined a share (0..1) of the final chain's scenario blocks within `[min, max]` |
//! | `min_height` | `height`, `node`? | every running node (or `node`) is at height ≥ `height` at the end |
//! | `banned` | `node` | every other running honest node has `node` in its `listbanned` at the end |
//!
//! A node of `[testnet] byzantine` is not honest: `converges`, `min_height` and the final
//! chain count the honest running nodes only (a banned Byzantine node is left on its own).
//!
//! A mistake in the file is an error naming the step or expectation, its line and the field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most nodes a scenario may have: one dev account per node.
pub const MAX_NODES: usize = 10;

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not TOML, or a top-level / `[testnet]` key is wrong (the message names line and key).
    #[error("{0}")]
    Toml(String),
    /// A step, an expectation or a setting is wrong.
    #[error("{place}: {message}")]
    Invalid {
        /// Where: `step 3 (line 14), field \`node\``.
        place: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The least time the timeline lasts.
    pub duration: Option<Duration>,
    /// The network.
    pub testnet: TestnetSpec,
    /// The timeline.
    pub steps: Vec<Step>,
    /// What must hold.
    pub expects: Vec<Expect>,
}

/// `[testnet]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestnetSpec {
    /// Number of nodes.
    pub nodes: usize,
    /// node0 mines one block every this many seconds.
    pub block_time: Option<u64>,
    /// `--hashrate` values for `cairn testnet up` (one RATE or `NAME=RATE` entries).
    pub hashrate: Vec<String>,
    /// `--target-interval`.
    pub target_interval: Option<u32>,
    /// `--topology`.
    pub topology: Option<String>,
    /// `--latency`, ms.
    pub latency: Option<f64>,
    /// `--byzantine NAME=MODE` entries.
    pub byzantine: BTreeMap<String, String>,
    /// Seed of `random:K`.
    pub seed: Option<u64>,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based position in the file.
    pub index: usize,
    /// Its line in the file.
    pub line: usize,
    /// When it starts, from the start of the timeline.
    pub at: Option<Duration>,
    /// Its name (for expectations that refer to it).
    pub name: Option<String>,
    /// What it does.
    pub action: Action,
}

/// Who a payment goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    /// The dev address of a node's wallet.
    Node(String),
    /// An address as given.
    Address(String),
}

/// How a `wait` step knows it is done.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// Every running node has the same tip.
    Converged,
    /// Every running node is at least at this height.
    Height(u64),
}

/// What a step does (see the table in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Split the network into groups of node names.
    Partition(Vec<Vec<String>>),
    /// Undo partitions and eclipses.
    Heal,
    /// Replace every peer of `node` by `by`.
    Eclipse {
        /// The victim.
        node: String,
        /// Its only peer (default: the next node).
        by: Option<String>,
    },
    /// Shape a link; the strings are `cairn testnet link` arguments after `A B`.
    Link {
        /// Sender.
        a: String,
        /// Receiver.
        b: String,
        /// Flags: `--latency 50`, `--one-way`, `--reset`, …
        flags: Vec<String>,
    },
    /// Change a node's hash-rate cap.
    Hashrate {
        /// The node.
        node: String,
        /// RATE as `cairn testnet hashrate` takes it.
        rate: String,
    },
    /// A payment from a node's wallet.
    Pay {
        /// Whose wallet pays.
        from: String,
        /// Recipient.
        to: Recipient,
        /// Base units.
        amount: u64,
        /// Absolute fee.
        fee: Option<u64>,
    },
    /// Two conflicting payments of one coin, sent to two nodes.
    DoubleSpend {
        /// Whose wallet pays.
        from: String,
        /// First recipient.
        to: Recipient,
        /// Second recipient.
        to2: Recipient,
        /// Base units.
        amount: u64,
        /// Node that gets the first transaction.
        node: String,
        /// Node that gets the second.
        node2: String,
    },
    /// `stop` over RPC.
    Stop(String),
    /// SIGKILL.
    Kill(String),
    /// Start a stopped node again.
    Restart(String),
    /// Mine blocks on a node now.
    Generate {
        /// The node.
        node: String,
        /// How many.
        blocks: u32,
    },
    /// Wait for a condition.
    Wait {
        /// The condition.
        until: WaitFor,
        /// How long at most.
        timeout: Duration,
    },
}

/// One expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Its name in the report.
    pub name: String,
    /// Its line in the file.
    pub line: usize,
    /// What must hold.
    pub kind: ExpectKind,
}

/// What an expectation checks (see the table in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum ExpectKind {
    /// The running nodes agree within this long after the last heal or restart.
    Converges(Duration),
    /// No reorganisation deeper than this.
    MaxReorg(u64),
    /// Exactly one of a double-spend step's transactions is confirmed everywhere.
    DoubleSpendResolved(String),
    /// A node's share of the scenario's blocks on the final chain.
    Share {
        /// The node.
        node: String,
        /// Lowest share.
        min: f64,
        /// Highest share.
        max: f64,
    },
    /// Every running honest node has banned this node by the end.
    Banned(String),
    /// Heights at the end.
    MinHeight {
        /// The least height.
        height: u64,
        /// Only this node (default: every running node).
        node: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    description: Option<String>,
    duration: Option<toml::Value>,
    testnet: RawTestnet,
    #[serde(default)]
    step: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    expect: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestnet {
    nodes: usize,
    block_time: Option<u64>,
    hashrate: Option<toml::Value>,
    target_interval: Option<u32>,
    topology: Option<String>,
    latency: Option<f64>,
    #[serde(default)]
    byzantine: BTreeMap<String, String>,
    seed: Option<u64>,
}

/// The fields of one `[[step]]` or `[[expect]]` table, taken one by one, so that a missing,
/// mistyped or unknown field is an error naming it and the line.
pub(crate) struct Fields {
    place: String,
    table: toml::Table,
    nodes: usize,
}

impl Fields {
    fn new(place: String, table: toml::Table, nodes: usize) -> Fields {
        Fields {
            place,
            table,
            nodes,
        }
    }

    /// An error about the whole entry.
    pub(crate) fn invalid(&self, message: impl Into<String>) -> FileError {
        FileError::Invalid {
            place: self.place.clone(),
            message: message.into(),
        }
    }

    /// An error about field `key`.
    pub(crate) fn bad(&self, key: &str, message: impl Into<String>) -> FileError {
        FileError::Invalid {
            place: format!("{}, field `{key}`", self.place),
            message: message.into(),
        }
    }

    fn take(&mut self, key: &str) -> Option<toml::Value> {
        self.table.remove(key)
    }

    pub(crate) fn opt_str(&mut self, key: &str) -> Result<Option<String>, FileError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.bad(key, format!("must be a string, not {}", shown(&other)))),
        }
    }

    pub(crate) fn str(&mut self, key: &str) -> Result<String, FileError> {
        self.opt_str(key)?
            .ok_or_else(|| self.bad(key, "is required"))
    }

    /// A string, or a whole number written without quotes (`rate = 0`).
    pub(crate) fn text(&mut self, key: &str) -> Result<String, FileError> {
        match self.take(key) {
            None => Err(self.bad(key, "is required")),
            Some(toml::Value::String(s)) => Ok(s),
            Some(toml::Value::Integer(i)) if i >= 0 => Ok(i.to_string()),
            Some(other) => Err(self.bad(key, format!("must be a string, not {}", shown(&other)))),
        }
    }

    pub(crate) fn opt_u64(&mut self, key: &str) -> Result<Option<u64>, FileError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if i >= 0 => Ok(Some(i as u64)),
            Some(other) => Err(self.bad(
                key,
                format!("must be a whole number ≥ 0, not {}", shown(&other)),
            )),
        }
    }

    pub(crate) fn u64(&mut self, key: &str) -> Result<u64, FileError> {
        self.opt_u64(key)?
            .ok_or_else(|| self.bad(key, "is required"))
    }

    pub(crate) fn opt_f64(&mut self, key: &str) -> Result<Option<f64>, FileError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(i as f64)),
            Some(toml::Value::Float(f)) if f.is_finite() => Ok(Some(f)),
            Some(other) => Err(self.bad(key, format!("must be a number, not {}", shown(&other)))),
        }
    }

    pub(crate) fn opt_bool(&mut self, key: &str) -> Result<bool, FileError> {
        match self.take(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(b),
            Some(other) => {
                Err(self.bad(key, format!("must be true or false, not {}", shown(&other))))
            }
        }
    }

    pub(crate) fn opt_duration(&mut self, key: &str) -> Result<Option<Duration>, FileError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => parse_duration(&v).map(Some).map_err(|m| self.bad(key, m)),
        }
    }

    pub(crate) fn duration(&mut self, key: &str) -> Result<Duration, FileError> {
        self.opt_duration(key)?
            .ok_or_else(|| self.bad(key, "is required"))
    }

    /// A node name (`nodeK`, K below the scenario's node count).
    pub(crate) fn opt_node(&mut self, key: &str) -> Result<Option<String>, FileError> {
        let Some(name) = self.opt_str(key)? else {
            return Ok(None);
        };
        check_node(&name, self.nodes).map_err(|m| self.bad(key, m))?;
        Ok(Some(name))
    }

    pub(crate) fn node(&mut self, key: &str) -> Result<String, FileError> {
        self.opt_node(key)?
            .ok_or_else(|| self.bad(key, "is required (a node name such as node0)"))
    }

    /// A node name or an address.
    pub(crate) fn recipient(&mut self, key: &str) -> Result<Recipient, FileError> {
        let to = self.str(key)?;
        if to.starts_with("node") {
            check_node(&to, self.nodes).map_err(|m| self.bad(key, m))?;
            return Ok(Recipient::Node(to));
        }
        Ok(Recipient::Address(to))
    }

    /// Groups of node names: `[["node0", "node1"], ["node2"]]` or `["node0,node1", "node2"]`.
    pub(crate) fn groups(&mut self, key: &str) -> Result<Vec<Vec<String>>, FileError> {
        let Some(value) = self.take(key) else {
            return Err(self.bad(key, "is required"));
        };
        let shape = "must be a list of groups: [[\"node0\", \"node1\"], [\"node2\"]]";
        let toml::Value::Array(groups) = value else {
            return Err(self.bad(key, shape));
        };
        let mut out = Vec::new();
        for group in groups {
            let names: Vec<String> = match group {
                toml::Value::String(s) => s.split(',').map(|n| n.trim().to_owned()).collect(),
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        toml::Value::String(s) => Ok(s),
                        _ => Err(self.bad(key, shape)),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(self.bad(key, shape)),
            };
            for name in &names {
                check_node(name, self.nodes).map_err(|m| self.bad(key, m))?;
            }
            out.push(names);
        }
        if out.len() < 2 {
            return Err(self.bad(key, "a partition needs at least two groups"));
        }
        Ok(out)
    }

    /// Fails on any field not taken, listing what the entry accepts.
    pub(crate) fn finish(self, accepted: &str) -> Result<(), FileError> {
        if let Some(key) = self.table.keys().next() {
            return Err(self.bad(key, format!("is not a field here (fields: {accepted})")));
        }
        Ok(())
    }
}

fn check_node(name: &str, nodes: usize) -> Result<(), String> {
    let index = name
        .strip_prefix("node")
        .and_then(|k| k.parse::<usize>().ok());
    match index {
        Some(k) if k < nodes && name == format!("node{k}") => Ok(()),
        _ => Err(format!(
            "{name:?} is not a node of this scenario (node0..node{})",
            nodes.saturating_sub(1)
        )),
    }
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1.5s"` or a number of seconds.
pub fn parse_duration(value: &toml::Value) -> Result<Duration, String> {
    let secs = match value {
        toml::Value::Integer(i) if *i >= 0 => *i as f64,
        toml::Value::Float(f) if *f >= 0.0 && f.is_finite() => *f,
        toml::Value::String(s) => {
            let s = s.trim();
            let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
                (n, 0.001)
            } else if let Some(n) = s.strip_suffix('s') {
                (n, 1.0)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 60.0)
            } else {
                (s, 1.0)
            };
            match number.trim().parse::<f64>() {
                Ok(n) if n >= 0.0 && n.is_finite() => n * scale,
                _ => {
                    return Err(format!(
                        "{s:?} is not a duration (\"10s\", \"500ms\", \"2m\")"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "{} is not a duration (\"10s\", \"500ms\", \"2m\")",
                shown(other)
            ));
        }
    };
    if secs > 24.0 * 3600.0 {
        return Err(format!("{secs} s is more than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A value as the file wrote it, for error messages.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// The line of byte offset `at` in `source`, 1-based.
fn line_of(source: &str, at: usize) -> usize {
    source[..at.min(source.len())].matches('\n').count() + 1
}

/// Reads and checks a scenario file.
pub fn read(path: &Path) -> Result<Scenario, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    parse(&text, &default_name).map_err(|e| match e {
        FileError::Toml(m) => FileError::Toml(format!("{}: {m}", path.display())),
        FileError::Invalid { place, message } => FileError::Invalid {
            place: format!("{}: {place}", path.display()),
            message,
        },
        other => other,
    })
}

/// Parses and checks a scenario's text; `default_name` names it when the file does not.
pub fn parse(text: &str, default_name: &str) -> Result<Scenario, FileError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| FileError::Toml(e.to_string()))?;
    let testnet = testnet_spec(raw.testnet)?;
    let nodes = testnet.nodes;
    let duration = raw
        .duration
        .map(|d| parse_duration(&d))
        .transpose()
        .map_err(|message| FileError::Invalid {
            place: "duration".into(),
            message,
        })?;
    let mut steps = Vec::new();
    for (i, spanned) in raw.step.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let place = format!("step {} (line {line})", i + 1);
        let fields = Fields::new(place, spanned.into_inner(), nodes);
        steps.push(crate::scenario::runner::parse_step(i + 1, line, fields)?);
    }
    let mut expects = Vec::new();
    for (i, spanned) in raw.expect.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let place = format!("expectation {} (line {line})", i + 1);
        let fields = Fields::new(place, spanned.into_inner(), nodes);
        expects.push(crate::scenario::expect::parse_expect(line, fields, &steps)?);
    }
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| default_name.to_owned()),
        description: raw.description.unwrap_or_default(),
        duration,
        testnet,
        steps,
        expects,
    })
}

fn testnet_spec(raw: RawTestnet) -> Result<TestnetSpec, FileError> {
    let invalid = |field: &str, message: String| FileError::Invalid {
        place: format!("[testnet], field `{field}`"),
        message,
    };
    if raw.nodes == 0 || raw.nodes > MAX_NODES {
        return Err(invalid(
            "nodes",
            format!("must be from 1 to {MAX_NODES}, not {}", raw.nodes),
        ));
    }
    let rate_text = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) if *i >= 0 => Some(i.to_string()),
        _ => None,
    };
    let hashrate = match &raw.hashrate {
        None => Vec::new(),
        Some(toml::Value::Table(per_node)) => {
            let mut out = Vec::new();
            for (name, rate) in per_node {
                check_node(name, raw.nodes).map_err(|m| invalid("hashrate", m))?;
                let rate = rate_text(rate).ok_or_else(|| {
                    invalid("hashrate", format!("{name}'s rate must be like \"25k\""))
                })?;
                out.push(format!("{name}={rate}"));
            }
            out
        }
        Some(v) => vec![rate_text(v).ok_or_else(|| {
            invalid(
                "hashrate",
                "must be a rate (\"25k\") or a table { node0 = \"25k\" }".into(),
            )
        })?],
    };
    for rate in &hashrate {
        let rate = rate.split_once('=').map_or(rate.as_str(), |(_, r)| r);
        cairn_miner::parse_hashrate(rate).map_err(|e| invalid("hashrate", e.to_string()))?;
    }
    if !hashrate.is_empty() && raw.target_interval.is_none() {
        return Err(invalid(
            "hashrate",
            "needs target_interval: the scenario network starts at the lowest difficulty, \
             where a capped miner finds a block with nearly every hash"
                .into(),
        ));
    }
    if raw.target_interval.is_some() && hashrate.is_empty() {
        return Err(invalid(
            "target_interval",
            "needs hashrate (the interval is for the rates' sum)".into(),
        ));
    }
    if let Some(t) = &raw.topology {
        t.parse::<crate::topology::Topology>()
            .map_err(|e| invalid("topology", e.to_string()))?;
    }
    for name in raw.byzantine.keys() {
        check_node(name, raw.nodes).map_err(|m| invalid("byzantine", m))?;
    }
    Ok(TestnetSpec {
        nodes: raw.nodes,
        block_time: raw.block_time,
        hashrate,
        target_interval: raw.target_interval,
        topology: raw.topology,
        latency: raw.latency,
        byzantine: raw.byzantine,
        seed: raw.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[testnet]\nnodes = 3\n";

    fn err(text: &str) -> String {
        parse(text, "t").unwrap_err().to_string()
    }

    #[test]
    fn a_full_file_parses_into_typed_steps_and_expectations() {
        let text = format!(
            "{HEAD}block_time = 2\n\n[[step]]\nat = \"3s\"\naction = \"partition\"\n\
             groups = [[\"node0\", \"node1\"], \"node2\"]\n\n[[step]]\nat = \"500ms\"\n\
             action = \"heal\"\n\n[[expect]]\nkind = \"converges\"\nwithin = \"30s\"\n"
        );
        let s = parse(&text, "t").unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.testnet.block_time, Some(2));
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[0].at, Some(Duration::from_secs(3)));
        assert_eq!(s.steps[0].line, 5);
        assert_eq!(
            s.steps[0].action,
            Action::Partition(vec![
                vec!["node0".into(), "node1".into()],
                vec!["node2".into()]
            ])
        );
        assert_eq!(s.steps[1].at, Some(Duration::from_millis(500)));
        assert_eq!(
            s.expects[0].kind,
            ExpectKind::Converges(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_bad_step_names_its_line_and_field() {
        let text = format!("{HEAD}\n[[step]]\naction = \"generate\"\nnode = \"node7\"\n");
        let e = err(&text);
        assert!(e.contains("step 1 (line 4)"), "{e}");
        assert!(e.contains("field `node`"), "{e}");
        assert!(e.contains("node7"), "{e}");

        let text =
            format!("{HEAD}\n[[step]]\naction = \"generate\"\nnode = \"node1\"\nnodes = 2\n");
        let e = err(&text);
        assert!(
            e.contains("field `nodes`") && e.contains("is not a field here"),
            "{e}"
        );

        let text = format!("{HEAD}\n[[step]]\naction = \"explode\"\n");
        let e = err(&text);
        assert!(
            e.contains("field `action`") && e.contains("partition"),
            "{e}"
        );

        let text = format!("{HEAD}\n[[step]]\nat = \"soon\"\naction = \"heal\"\n");
        let e = err(&text);
        assert!(
            e.contains("field `at`") && e.contains("not a duration"),
            "{e}"
        );

        let text =
            format!("{HEAD}\n[[step]]\naction = \"pay\"\nfrom = \"node0\"\nto = \"node1\"\n");
        let e = err(&text);
        assert!(
            e.contains("field `amount`") && e.contains("required"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let e = err("[testnet]\nnodes = 0\n");
        assert!(e.contains("`nodes`"), "{e}");
        let e = err("[testnet]\nnodes = 2\nhashrate = \"10k\"\n");
        assert!(e.contains("target_interval"), "{e}");
        let e = err("[testnet]\nnodes = 2\ntopology = \"blob\"\n");
        assert!(e.contains("`topology`"), "{e}");
        let e = err("[testnet]\nnodes = 2\ncolour = 1\n");
        assert!(e.contains("colour") && e.contains("line 3"), "{e}");
        let s = parse(
            "[testnet]\nnodes = 2\nhashrate = { node0 = \"30k\", node1 = 10000 }\ntarget_interval = 2\n",
            "t",
        )
        .unwrap();
        assert_eq!(s.testnet.hashrate, vec!["node0=30k", "node1=10000"]);
    }

    #[test]
    fn durations_take_units() {
        let d = |s: &str| parse_duration(&toml::Value::String(s.into()));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1.5"), Ok(Duration::from_millis(1500)));
        assert!(d("-1s").is_err());
        assert_eq!(
            parse_duration(&toml::Value::Integer(4)),
            Ok(Duration::from_secs(4))
        );
    }
}
