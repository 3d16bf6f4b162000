//! The timeline: the table of step actions (name → fields → parser; [`ACTIONS`]) and their
//! execution against a running testnet. Every action works the way a user would: through
//! `cairn testnet …` and `cairn wallet …` (run as child processes, their output kept off the
//! report), JSON-RPC, and signals to a node's pid.

use crate::experiment::net::testnet_cli;
use crate::scenario::file::{Action, Fields, FileError, Recipient, Step, WaitFor};
use crate::scenario::observe::Observer;
use crate::testnet::{client, node_named};
use crate::view::source::RpcSource;
use anyhow::{Context, bail};
use cairn_rpc::{Devnet, NodeInfo};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to stop, or to start again.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// One step action.
pub struct ActionDef {
    /// Its `action = …` name.
    pub name: &'static str,
    /// The fields it takes besides `at`, `name` and `action`.
    pub fields: &'static str,
    parse: fn(&mut Fields) -> Result<Action, FileError>,
}

/// Every action (the module docs of [`crate::scenario::file`] describe them).
pub const ACTIONS: &[ActionDef] = &[
    ActionDef {
        name: "partition",
        fields: "groups",
        parse: |f| Ok(Action::Partition(f.groups("groups")?)),
    },
    ActionDef {
        name: "heal",
        fields: "",
        parse: |_| Ok(Action::Heal),
    },
    ActionDef {
        name: "eclipse",
        fields: "node, by",
        parse: |f| {
            Ok(Action::Eclipse {
                node: f.node("node")?,
                by: f.opt_node("by")?,
            })
        },
    },
    ActionDef {
        name: "link",
        fields: "a, b, latency, jitter, loss, bandwidth, one_way, reset",
        parse: parse_link,
    },
    ActionDef {
        name: "hashrate",
        fields: "node, rate",
        parse: |f| {
            let node = f.node("node")?;
            let rate = f.text("rate")?;
            cairn_miner::parse_hashrate(&rate).map_err(|e| f.bad("rate", e.to_string()))?;
            Ok(Action::Hashrate { node, rate })
        },
    },
    ActionDef {
        name: "pay",
        fields: "from, to, amount, fee",
        parse: |f| {
            Ok(Action::Pay {
                from: f.node("from")?,
                to: f.recipient("to")?,
                amount: f.u64("amount")?,
                fee: f.opt_u64("fee")?,
            })
        },
    },
    ActionDef {
        name: "double-spend",
        fields: "from, to, to2, amount, node, node2",
        parse: |f| {
            let from = f.opt_node("from")?.unwrap_or_else(|| "node0".into());
            let node = f.opt_node("node")?.unwrap_or_else(|| from.clone());
            Ok(Action::DoubleSpend {
                to: f.recipient("to")?,
                to2: f.recipient("to2")?,
                amount: f.u64("amount")?,
                node2: f.opt_node("node2")?.unwrap_or_else(|| node.clone()),
                node,
                from,
            })
        },
    },
    ActionDef {
        name: "stop",
        fields: "node",
        parse: |f| Ok(Action::Stop(f.node("node")?)),
    },
    ActionDef {
        name: "kill",
        fields: "node",
        parse: |f| Ok(Action::Kill(f.node("node")?)),
    },
    ActionDef {
        name: "restart",
        fields: "node",
        parse: |f| Ok(Action::Restart(f.node("node")?)),
    },
    ActionDef {
        name: "generate",
        fields: "node, blocks",
        parse: |f| {
            let node = f.node("node")?;
            let blocks = f.opt_u64("blocks")?.unwrap_or(1);
            if !(1..=1000).contains(&blocks) {
                return Err(f.bad("blocks", "must be from 1 to 1000"));
            }
            Ok(Action::Generate {
                node,
                blocks: blocks as u32,
            })
        },
    },
    ActionDef {
        name: "wait",
        fields: "until, height, timeout",
        parse: parse_wait,
    },
];

fn parse_link(f: &mut Fields) -> Result<Action, FileError> {
    let a = f.node("a")?;
    let b = f.node("b")?;
    if a == b {
        return Err(f.bad("b", "a link joins two different nodes"));
    }
    let mut flags = Vec::new();
    for key in ["latency", "jitter", "loss", "bandwidth"] {
        if let Some(v) = f.opt_f64(key)? {
            flags.push(format!("--{key}"));
            flags.push(v.to_string());
        }
    }
    if f.opt_bool("one_way")? {
        flags.push("--one-way".into());
    }
    if f.opt_bool("reset")? {
        if flags.iter().any(|x| x != "--one-way") {
            return Err(f.bad(
                "reset",
                "cannot be combined with latency, jitter, loss or bandwidth",
            ));
        }
        flags.push("--reset".into());
    }
    if flags.is_empty() {
        return Err(f.invalid("a link step sets latency, jitter, loss or bandwidth, or reset"));
    }
    Ok(Action::Link { a, b, flags })
}

fn parse_wait(f: &mut Fields) -> Result<Action, FileError> {
    let until = f.str("until")?;
    let until = match until.as_str() {
        "converged" => WaitFor::Converged,
        "height" => WaitFor::Height(f.u64("height")?),
        other => {
            return Err(f.bad(
                "until",
                format!("{other:?} is not a condition (converged, height)"),
            ));
        }
    };
    let timeout = f
        .opt_duration("timeout")?
        .unwrap_or(Duration::from_secs(30));
    Ok(Action::Wait { until, timeout })
}

/// Parses one `[[step]]` table.
pub(crate) fn parse_step(index: usize, line: usize, mut fields: Fields) -> Result<Step, FileError> {
    let at = fields.opt_duration("at")?;
    let name = fields.opt_str("name")?;
    let action = fields.str("action")?;
    let Some(def) = ACTIONS.iter().find(|d| d.name == action) else {
        let names: Vec<&str> = ACTIONS.iter().map(|d| d.name).collect();
        return Err(fields.bad(
            "action",
            format!("{action:?} is not an action ({})", names.join(", ")),
        ));
    };
    let action = (def.parse)(&mut fields)?;
    let accepted = match def.fields {
        "" => "at, name, action".to_owned(),
        more => format!("at, name, action, {more}"),
    };
    fields.finish(&accepted)?;
    if matches!(action, Action::DoubleSpend { .. }) && name.is_none() {
        return Err(FileError::Invalid {
            place: format!("step {index} (line {line}), field `name`"),
            message: "a double-spend step needs a name (expectations refer to it)".into(),
        });
    }
    Ok(Step {
        index,
        line,
        at,
        name,
        action,
    })
}

/// The name an action has in the table.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Partition(_) => "partition",
        Action::Heal => "heal",
        Action::Eclipse { .. } => "eclipse",
        Action::Link { .. } => "link",
        Action::Hashrate { .. } => "hashrate",
        Action::Pay { .. } => "pay",
        Action::DoubleSpend { .. } => "double-spend",
        Action::Stop(_) => "stop",
        Action::Kill(_) => "kill",
        Action::Restart(_) => "restart",
        Action::Generate { .. } => "generate",
        Action::Wait { .. } => "wait",
    }
}

/// A running scenario's handle on its testnet.
pub struct Run<'a> {
    /// The testnet directory.
    pub dir: PathBuf,
    /// What watches the nodes.
    pub observer: &'a Observer,
    /// Each node's command line as it was started (for `restart`).
    pub cmdlines: Vec<Vec<String>>,
    /// Nodes this process started (restarts), reaped when they exit.
    pub children: Vec<Child>,
    /// Double-spend step name → its two txids.
    pub double_spends: BTreeMap<String, [String; 2]>,
    /// Seconds into the timeline of the last `heal` or `restart`.
    pub last_rejoin: Option<f64>,
}

impl Run<'_> {
    /// Starts following `dir`'s testnet; reads every node's command line.
    pub fn new<'a>(dir: &Path, observer: &'a Observer) -> anyhow::Result<Run<'a>> {
        let devnet = Devnet::read(dir)?;
        let cmdlines = devnet
            .nodes
            .iter()
            .map(|n| {
                let raw = std::fs::read(format!("/proc/{}/cmdline", n.pid))
                    .with_context(|| format!("reading {}'s command line", n.name))?;
                Ok(raw
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Run {
            dir: dir.to_path_buf(),
            observer,
            cmdlines,
            children: Vec::new(),
            double_spends: BTreeMap::new(),
            last_rejoin: None,
        })
    }

    fn devnet(&self) -> anyhow::Result<Devnet> {
        Ok(Devnet::read(&self.dir)?)
    }

    fn index(&self, name: &str) -> usize {
        name.strip_prefix("node")
            .and_then(|k| k.parse().ok())
            .expect("node names were checked when the file was read")
    }

    fn testnet(&self, args: &[&str]) -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        testnet_cli(&self.dir, &args)
    }

    /// Runs one step; returns what it did.
    pub fn execute(&mut self, action: &Action, step_name: Option<&str>) -> anyhow::Result<String> {
        match action {
            Action::Partition(groups) => self.partition(groups),
            Action::Heal => self.heal(),
            Action::Eclipse { node, by } => self.eclipse(node, by.as_deref()),
            Action::Link { a, b, flags } => {
                let mut args = vec!["link", a.as_str(), b.as_str()];
                args.extend(flags.iter().map(String::as_str));
                self.testnet(&args)?;
                Ok(format!("{a} → {b}: {}", flags.join(" ")))
            }
            Action::Hashrate { node, rate } => {
                self.testnet(&["hashrate", node, rate])?;
                Ok(format!("{node} mines at most {rate} H/s"))
            }
            Action::Pay {
                from,
                to,
                amount,
                fee,
            } => self.pay(from, to, *amount, *fee),
            Action::DoubleSpend {
                from,
                to,
                to2,
                amount,
                node,
                node2,
            } => {
                let name = step_name.expect("double-spend steps have names (checked)");
                self.double_spend(name, from, [to, to2], *amount, [node, node2])
            }
            Action::Stop(node) => self.stop(node),
            Action::Kill(node) => self.kill(node),
            Action::Restart(node) => self.restart(node),
            Action::Generate { node, blocks } => {
                let devnet = self.devnet()?;
                let hashes: Vec<String> = client(node_named(&devnet, node)?)?
                    .call_as("generate", json!([blocks]))
                    .with_context(|| format!("generate on {node}"))?;
                Ok(format!("{node} mined {}", hashes.len()))
            }
            Action::Wait { until, timeout } => self.wait(until, *timeout),
        }
    }

    fn partition(&mut self, groups: &[Vec<String>]) -> anyhow::Result<String> {
        let groups: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
        let mut args = vec!["partition"];
        args.extend(groups.iter().map(String::as_str));
        self.testnet(&args)?;
        self.observer.set_split(true);
        Ok(format!("split into {}", groups.join(" | ")))
    }

    fn heal(&mut self) -> anyhow::Result<String> {
        self.testnet(&["heal"])?;
        self.observer.set_split(false);
        self.last_rejoin = Some(self.observer.elapsed().as_secs_f64());
        Ok("healed".into())
    }

    fn eclipse(&mut self, node: &str, by: Option<&str>) -> anyhow::Result<String> {
        let mut args = vec!["eclipse", node];
        if let Some(by) = by {
            args.extend(["--by", by]);
        }
        self.testnet(&args)?;
        self.observer.set_split(true);
        Ok(format!("{node} eclipsed"))
    }

    fn address(&self, devnet: &Devnet, to: &Recipient) -> anyhow::Result<String> {
        match to {
            Recipient::Address(a) => Ok(a.clone()),
            Recipient::Node(name) => Ok(devnet
                .dev_keys
                .get(self.index(name))
                .with_context(|| format!("the network has no dev account for {name}"))?
                .address
                .clone()),
        }
    }

    /// `cairn wallet --datadir <from's datadir> --json ARGS…`, its JSON answer.
    fn wallet(&self, devnet: &Devnet, from: &str, args: &[String]) -> anyhow::Result<Value> {
        let node = node_named(devnet, from)?;
        let mut cmd = Command::new(std::env::current_exe().context("finding the cairn binary")?);
        cmd.arg("wallet").arg("--datadir").arg(&node.datadir);
        if let Some(g) = &devnet.genesis {
            cmd.arg("--genesis").arg(g);
        }
        let out = cmd
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running cairn wallet")?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            bail!("cairn wallet {}: {}", args[0], last.unwrap_or("no message"));
        }
        serde_json::from_slice(&out.stdout).context("reading cairn wallet's JSON")
    }

    fn pay(
        &mut self,
        from: &str,
        to: &Recipient,
        amount: u64,
        fee: Option<u64>,
    ) -> anyhow::Result<String> {
        let devnet = self.devnet()?;
        let to = self.address(&devnet, to)?;
        let mut args = vec![
            "send".into(),
            "--to".into(),
            to,
            "--amount".into(),
            amount.to_string(),
        ];
        if let Some(fee) = fee {
            args.extend(["--fee".into(), fee.to_string()]);
        }
        let answer = self.wallet(&devnet, from, &args)?;
        Ok(format!(
            "{from} paid {amount}: {}",
            answer["txid"].as_str().unwrap_or("?")
        ))
    }

    fn double_spend(
        &mut self,
        name: &str,
        from: &str,
        to: [&Recipient; 2],
        amount: u64,
        nodes: [&String; 2],
    ) -> anyhow::Result<String> {
        let devnet = self.devnet()?;
        let datadir = |n: &str| -> anyhow::Result<String> {
            Ok(node_named(&devnet, n)?.datadir.display().to_string())
        };
        let args = vec![
            "double-spend".into(),
            "--to".into(),
            self.address(&devnet, to[0])?,
            "--to2".into(),
            self.address(&devnet, to[1])?,
            "--amount".into(),
            amount.to_string(),
            "--node".into(),
            datadir(nodes[0])?,
            "--node2".into(),
            datadir(nodes[1])?,
        ];
        let answer = self.wallet(&devnet, from, &args)?;
        let txid = |k: &str| -> anyhow::Result<String> {
            Ok(answer[k]["txid"]
                .as_str()
                .with_context(|| format!("cairn wallet double-spend gave no {k} txid"))?
                .to_owned())
        };
        let pair = [txid("first")?, txid("second")?];
        let accepted = |k: &str| answer[k]["answer"]["accepted"].as_bool() == Some(true);
        if !accepted("first") || !accepted("second") {
            bail!(
                "a node refused its half of the double spend: first {}, second {}",
                answer["first"]["answer"],
                answer["second"]["answer"]
            );
        }
        let text = format!(
            "{} → {}, {} → {}",
            &pair[0][..16],
            nodes[0],
            &pair[1][..16],
            nodes[1]
        );
        self.double_spends.insert(name.to_owned(), pair);
        Ok(text)
    }

    fn wait_dead(&mut self, pid: u32) -> bool {
        let deadline = Instant::now() + NODE_TIMEOUT;
        while Instant::now() < deadline {
            for child in &mut self.children {
                let _ = child.try_wait();
            }
            if !pid_alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self, name: &str) -> anyhow::Result<String> {
        let devnet = self.devnet()?;
        let node = node_named(&devnet, name)?;
        client(node)?
            .call("stop", json!([]))
            .with_context(|| format!("stopping {name}"))?;
        self.observer.set_running(self.index(name), false);
        if !self.wait_dead(node.pid) {
            bail!(
                "{name} (pid {}) did not stop within {NODE_TIMEOUT:?}",
                node.pid
            );
        }
        Ok(format!("{name} stopped"))
    }

    fn kill(&mut self, name: &str) -> anyhow::Result<String> {
        let devnet = self.devnet()?;
        let pid = node_named(&devnet, name)?.pid;
        if !pid_alive(pid) {
            bail!("{name} (pid {pid}) is not running");
        }
        self.observer.set_running(self.index(name), false);
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .context("running kill")?;
        if !status.success() || !self.wait_dead(pid) {
            bail!("{name} (pid {pid}) survived SIGKILL");
        }
        Ok(format!("{name} killed (SIGKILL)"))
    }

    fn restart(&mut self, name: &str) -> anyhow::Result<String> {
        let k = self.index(name);
        let mut devnet = self.devnet()?;
        if pid_alive(devnet.nodes[k].pid) {
            bail!("{name} is still running (stop or kill it first)");
        }
        let datadir = devnet.nodes[k].datadir.clone();
        let child = spawn_node(&self.cmdlines[k], &datadir)?;
        let pid = child.id();
        self.children.push(child);
        let started = Instant::now();
        let info = loop {
            if let Ok(info) = NodeInfo::read(&datadir)
                && info.pid == pid
            {
                break info;
            }
            if !pid_alive(pid) || started.elapsed() > NODE_TIMEOUT {
                bail!(
                    "{name} did not start again; see {}/node.log",
                    datadir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let node = &mut devnet.nodes[k];
        node.rpc_url = format!("http://{}", info.rpc);
        node.p2p = info
            .p2p
            .first()
            .map(|addr| format!("{addr}/p2p/{}", info.peer_id))
            .with_context(|| format!("{name} reported no p2p address"))?;
        node.peer_id = info.peer_id;
        node.pid = pid;
        node.metrics_url = info.metrics.map(|a| format!("http://{a}/metrics"));
        devnet.write(&self.dir)?;
        crate::peering::apply(&devnet).with_context(|| format!("reconnecting {name}"))?;
        for link in devnet
            .links
            .iter()
            .filter(|l| l.from == *name || l.to == *name)
        {
            let args = [
                "link".to_owned(),
                link.from.clone(),
                link.to.clone(),
                "--one-way".into(),
                "--latency".into(),
                link.shape.latency_ms.to_string(),
                "--jitter".into(),
                link.shape.jitter_ms.to_string(),
                "--loss".into(),
                link.shape.loss_pct.to_string(),
                "--bandwidth".into(),
                link.shape.bandwidth_kbit.to_string(),
            ];
            testnet_cli(&self.dir, &args).with_context(|| format!("re-shaping {name}'s links"))?;
        }
        let node = &devnet.nodes[k];
        self.observer.replace_source(
            k,
            RpcSource::for_node(name, &node.rpc_url, &node.cookie_file),
        );
        self.observer.set_running(k, true);
        self.last_rejoin = Some(self.observer.elapsed().as_secs_f64());
        Ok(format!("{name} restarted (pid {pid})"))
    }

    fn wait(&mut self, until: &WaitFor, timeout: Duration) -> anyhow::Result<String> {
        let began = Instant::now();
        let from = self.observer.elapsed().as_secs_f64();
        loop {
            let state = self.observer.snapshot();
            let done = match until {
                WaitFor::Converged => state.agreed_since(from).is_some(),
                WaitFor::Height(h) => state
                    .lowest_running_height()
                    .is_some_and(|l| u64::from(l) >= *h),
            };
            if done {
                return Ok(format!("done after {:.1}s", began.elapsed().as_secs_f64()));
            }
            if began.elapsed() > timeout {
                bail!("timed out after {}s", timeout.as_secs_f64());
            }
            std::thread::sleep(crate::scenario::observe::POLL);
        }
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z ") && !stat.contains(") X "))
        .unwrap_or(false)
}

/// Starts `cmdline` again in its own process group (so it outlives a Ctrl-C of the
/// scenario, as `cairn testnet up`'s nodes do), output appended to the datadir's logs.
fn spawn_node(cmdline: &[String], datadir: &Path) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let (exe, args) = cmdline
        .split_first()
        .context("the node's command line was empty")?;
    let log = |file: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(datadir.join(file))
            .with_context(|| format!("opening {}/{file}", datadir.display()))
    };
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log("stdout.log")?))
        .stderr(Stdio::from(log("node.log")?))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {exe}"))
}
