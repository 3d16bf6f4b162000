//! `cairn experiment`: consensus theory measured on real nodes.
//!
//! Each experiment starts a fresh `cairn testnet` of real `cairn node` processes and prints
//! its measurements beside the published formula ([`crate::theory`]) with a 95 % interval
//! ([`stats`]). The proof-of-work lottery is the one thing the runner draws itself: it
//! draws each miner's exponential waiting time from `--seed` and the hash shares, and calls
//! `generate 1` on the node that "found" the block at that moment. Everything after the
//! find is real: gossip, sync, fork choice, reorgs, the selfish miner's withholding
//! (`cairn node --strategy selfish`), the merchant's confirmations. Drawing the lottery
//! makes hash shares exact and runs fast and reproducible on a 2-core machine, where real
//! capped hashing would spend most of the time waiting for blocks.
//!
//! Experiments are declared once in [`EXPERIMENTS`] (name, what it measures, theory).

pub mod double_spend;
pub mod net;
pub mod plot;
pub mod selfish;
pub mod stale_rate;
pub mod stats;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Instant;

/// One experiment of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Experiment {
    /// Its subcommand name.
    pub name: &'static str,
    /// What `measured` is.
    pub measures: &'static str,
    /// What `theory` is.
    pub theory: &'static str,
    /// The x axis of its plot: the `params` key that varies between points.
    pub varies: &'static str,
}

/// Every experiment, for help text, reports and plots.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "stale-rate",
        measures: "share of mined blocks on no node's active chain",
        theory: "1 − e^(−d/T)",
        varies: "latency_ms",
    },
    Experiment {
        name: "selfish",
        measures: "selfish pool's share of main-chain blocks",
        theory: "Eyal–Sirer R(α, γ measured)",
        varies: "alpha",
    },
    Experiment {
        name: "double-spend",
        measures: "attacker's success rate",
        theory: "Rosenfeld (exact); Nakamoto §11 beside it",
        varies: "z",
    },
];

fn experiment(name: &str) -> &'static Experiment {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .expect("every subcommand is in the registry")
}

/// Arguments of `cairn experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Print `{"points": [{params, measured, theory, ci95}]}` instead of a table
    #[arg(long, global = true)]
    pub json: bool,
    /// Also draw the points and the theory curve to this SVG file
    #[arg(long, global = true, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Seed of the block lottery (the same seed draws the same finds)
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// Keep the testnets under DIR instead of a temporary directory that is removed
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Which experiment
    #[command(subcommand)]
    pub command: ExperimentCommand,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Stale blocks against 1 − e^(−d/T), for link delays d and block interval T.
    ///
    /// N equal miners, every link delayed by d: a block found while another node's block is
    /// still on the wire forks. Only the other N − 1 nodes can race a block, so the theory
    /// is 1 − e^(−d/T′) with T′ = N·T/(N − 1), their mean interval (1 − e^(−d/T) for many
    /// miners). It counts one stale block per rival; overlapping races make a little fewer,
    /// so each point also shows `replay`, the fixed-delay model on the run's own finds.
    StaleRate(stale_rate::StaleRateArgs),
    /// A selfish miner's revenue share against Eyal–Sirer's formula.
    Selfish(selfish::SelfishArgs),
    /// Double-spend success against Rosenfeld's exact formula and Nakamoto §11.
    DoubleSpend(double_spend::DoubleSpendArgs),
}

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The point's settings, under the flag names.
    pub params: Map<String, Value>,
    /// The measured figure.
    pub measured: f64,
    /// The formula's value (an object for `double-spend`).
    pub theory: Value,
    /// 95 % interval around `measured`.
    pub ci95: [f64; 2],
    /// The same figure from the model replayed on the run's own draws, where the run allows
    /// an exact replay: `selfish` with no race decided on the pool's branch (Eyal–Sirer's
    /// algorithm), `stale-rate` (propagation taking exactly the links' delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<f64>,
    /// The value of `theory` the interval is checked against.
    #[serde(skip)]
    pub reference: f64,
    /// Anything the reader must know about this point (bias, disagreements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Point {
    /// Whether the reference theory value lies inside the interval.
    pub fn theory_in_ci(&self) -> bool {
        stats::covers(self.ci95, self.reference)
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The experiment's name.
    pub experiment: &'static str,
    /// The lottery seed.
    pub seed: u64,
    /// How the blocks were found.
    pub method: String,
    /// Wall time of the run.
    pub wall_secs: f64,
    /// The points.
    pub points: Vec<Point>,
}

/// What every experiment gets from the command line.
#[derive(Debug, Clone)]
pub struct Common {
    /// Lottery seed.
    pub seed: u64,
    /// Where testnets go.
    pub dir: Option<PathBuf>,
}

impl Common {
    /// The directory for point `index`'s testnet.
    pub fn point_dir(&self, index: usize) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("point{index}")))
    }
}

/// A progress bar on stderr counting `total` steps.
pub fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Parses a comma-separated list of numbers.
pub fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| format!("{x:?} is not a number"))
        })
        .collect()
}

/// Runs `cairn experiment`.
pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let common = Common {
        seed: args.seed,
        dir: args.dir.clone(),
    };
    let started = Instant::now();
    let (name, method, points) = match &args.command {
        ExperimentCommand::StaleRate(a) => (
            "stale-rate",
            stale_rate::METHOD,
            stale_rate::run(a, &common)?,
        ),
        ExperimentCommand::Selfish(a) => ("selfish", selfish::METHOD, selfish::run(a, &common)?),
        ExperimentCommand::DoubleSpend(a) => (
            "double-spend",
            double_spend::METHOD,
            double_spend::run(a, &common)?,
        ),
    };
    let report = Report {
        experiment: name,
        seed: args.seed,
        method: method.to_owned(),
        wall_secs: started.elapsed().as_secs_f64(),
        points,
    };
    if let Some(path) = &args.plot {
        plot::write(path, experiment(name), &report)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints the report as a table.
pub fn print_table(report: &Report) {
    let e = experiment(report.experiment);
    println!(
        "cairn experiment {}: {} vs {}",
        e.name, e.measures, e.theory
    );
    println!("{}", report.method);
    let keys: Vec<String> = report
        .points
        .first()
        .map(|p| p.params.keys().cloned().collect())
        .unwrap_or_default();
    let mut header: Vec<String> = keys.clone();
    let replays = report.points.iter().any(|p| p.replay.is_some());
    header.extend(["measured", "theory"].map(String::from));
    if replays {
        header.push("replay".into());
    }
    header.extend(["ci95", "theory in ci95"].map(String::from));
    println!("{}", header.join("\t"));
    for p in &report.points {
        let mut row: Vec<String> = keys.iter().map(|k| show(&p.params[k])).collect();
        let theory = match &p.theory {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect::<Vec<_>>()
                .join(" "),
            v => show(v),
        };
        row.push(format!("{:.4}", p.measured));
        row.push(theory);
        if replays {
            row.push(p.replay.map_or("-".into(), |r| format!("{r:.4}")));
        }
        row.push(format!("[{:.4}, {:.4}]", p.ci95[0], p.ci95[1]));
        row.push(if p.theory_in_ci() { "yes" } else { "no" }.into());
        println!("{}", row.join("\t"));
        if let Some(note) = &p.note {
            println!("  note: {note}");
        }
    }
    println!("wall time {:.1} s (seed {})", report.wall_secs, report.seed);
}

/// `params` from `(name, value)` pairs.
pub fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A number for `params` or `theory`, rounded so tables and JSON stay readable.
pub fn num(x: f64) -> Value {
    json!((x * 1e9).round() / 1e9)
}
