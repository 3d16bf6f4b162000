//! The scenario report: the JSON object of `cairn scenario run --json` (the INTERFACE keys
//! `blocks_by_node`, `stale_blocks`, `stale_rate`, `reorg_depths`, `convergence_secs`,
//! `propagation_ms` {`p50`, `p95`}, `expectations` [{`name`, `ok`, `detail`}], plus
//! extensions) and its human summary.

use crate::scenario::observe::Reorg;
use serde::Serialize;
use std::collections::BTreeMap;

/// Percentiles of the propagation delays.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Propagation {
    /// Median, ms (`null` without samples).
    pub p50: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
    /// Number of (block, node) delays measured.
    pub samples: usize,
}

impl Propagation {
    /// From raw delays in ms (nearest-rank percentiles).
    pub fn of(mut delays: Vec<f64>) -> Propagation {
        delays.sort_by(f64::total_cmp);
        let rank = |q: f64| -> Option<f64> {
            if delays.is_empty() {
                return None;
            }
            let i = ((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1;
            Some(delays[i])
        };
        Propagation {
            p50: rank(0.5),
            p95: rank(0.95),
            samples: delays.len(),
        }
    }
}

/// One expectation's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExpectationResult {
    /// Its name.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Why.
    pub detail: String,
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepResult {
    /// 1-based position in the file.
    pub index: usize,
    /// Its action.
    pub action: String,
    /// When it started, seconds into the timeline.
    pub at_secs: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did, or its error.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed used (`--seed`, else the file's).
    pub seed: Option<u64>,
    /// Seconds the run observed the nodes.
    pub duration_secs: f64,
    /// Scenario blocks on the final chain, by the node that mined them (`other` for a
    /// coinbase paying no node's address).
    pub blocks_by_node: BTreeMap<String, u64>,
    /// Scenario blocks some node knows that are on no node's active chain.
    pub stale_blocks: u64,
    /// `stale_blocks` / (those + the final chain's scenario blocks); 0 without blocks.
    pub stale_rate: f64,
    /// Depth of every reorganisation seen, in order.
    pub reorg_depths: Vec<u64>,
    /// The same with node and time (extension).
    pub reorgs: Vec<Reorg>,
    /// Seconds from the last heal or restart (else the timeline's end) until every running
    /// node had the same tip; `null` if that was not seen.
    pub convergence_secs: Option<f64>,
    /// How long blocks took to reach the other nodes.
    pub propagation_ms: Propagation,
    /// The steps (extension).
    pub steps: Vec<StepResult>,
    /// The expectations, in file order (a failed step is one more, failed).
    pub expectations: Vec<ExpectationResult>,
    /// Whether every expectation held.
    pub ok: bool,
}

impl Report {
    /// The names of the expectations that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.expectations
            .iter()
            .filter(|e| !e.ok)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "scenario {}: {:.1}s observed\n",
            self.scenario, self.duration_secs
        );
        for s in &self.steps {
            out.push_str(&format!(
                "  {:>6.1}s  step {} {:<12} {}{}\n",
                s.at_secs,
                s.index,
                s.action,
                if s.ok { "" } else { "FAILED: " },
                s.detail
            ));
        }
        let blocks: Vec<String> = self
            .blocks_by_node
            .iter()
            .map(|(n, b)| format!("{n}={b}"))
            .collect();
        let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} ms"));
        out.push_str(&format!(
            "blocks by node: {}\nstale blocks: {} (rate {:.3})\nreorgs: {} (deepest {})\n\
             convergence: {}\npropagation: p50 {}, p95 {} ({} samples)\n",
            if blocks.is_empty() {
                "none".into()
            } else {
                blocks.join(" ")
            },
            self.stale_blocks,
            self.stale_rate,
            self.reorg_depths.len(),
            self.reorg_depths.iter().max().copied().unwrap_or(0),
            self.convergence_secs
                .map_or("not seen".into(), |s| format!("{s:.1}s")),
            ms(self.propagation_ms.p50),
            ms(self.propagation_ms.p95),
            self.propagation_ms.samples,
        ));
        for e in &self.expectations {
            out.push_str(&format!(
                "{} {}: {}\n",
                if e.ok { "ok  " } else { "FAIL" },
                e.name,
                e.detail
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Propagation::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((p.p50, p.p95, p.samples), (Some(50.0), Some(95.0), 100));
        let one = Propagation::of(vec![7.0]);
        assert_eq!((one.p50, one.p95), (Some(7.0), Some(7.0)));
        assert_eq!(Propagation::of(vec![]).p50, None);
    }
}
