//! The expectation table: each kind's name, fields and parser, and the check of an
//! expectation against the [`Evidence`] a run gathered.

use crate::scenario::file::{Action, Expect, ExpectKind, Fields, FileError, Step};
use std::collections::{BTreeMap, BTreeSet};

/// One kind of expectation.
pub struct ExpectDef {
    /// Its `kind = …` name.
    pub name: &'static str,
    /// The fields it takes.
    pub fields: &'static str,
    parse: fn(&mut Fields, &[Step]) -> Result<ExpectKind, FileError>,
}

/// Every kind (the module docs of [`crate::scenario::file`] describe them).
pub const EXPECTS: &[ExpectDef] = &[
    ExpectDef {
        name: "converges",
        fields: "within",
        parse: |f, _| Ok(ExpectKind::Converges(f.duration("within")?)),
    },
    ExpectDef {
        name: "max_reorg",
        fields: "depth",
        parse: |f, _| Ok(ExpectKind::MaxReorg(f.u64("depth")?)),
    },
    ExpectDef {
        name: "double_spend_resolved",
        fields: "step",
        parse: parse_double_spend,
    },
    ExpectDef {
        name: "share",
        fields: "node, min, max",
        parse: parse_share,
    },
    ExpectDef {
        name: "banned",
        fields: "node",
        parse: |f, _| Ok(ExpectKind::Banned(f.node("node")?)),
    },
    ExpectDef {
        name: "min_height",
        fields: "height, node",
        parse: |f, _| {
            Ok(ExpectKind::MinHeight {
                height: f.u64("height")?,
                node: f.opt_node("node")?,
            })
        },
    },
];

fn parse_double_spend(f: &mut Fields, steps: &[Step]) -> Result<ExpectKind, FileError> {
    let step = f.str("step")?;
    let found = steps.iter().any(|s| {
        s.name.as_deref() == Some(step.as_str()) && matches!(s.action, Action::DoubleSpend { .. })
    });
    if !found {
        return Err(f.bad(
            "step",
            format!("no double-spend step is named {step:?} (give the step `name = \"{step}\"`)"),
        ));
    }
    Ok(ExpectKind::DoubleSpendResolved(step))
}

fn parse_share(f: &mut Fields, _: &[Step]) -> Result<ExpectKind, FileError> {
    let node = f.node("node")?;
    let min = f.opt_f64("min")?.unwrap_or(0.0);
    let max = f.opt_f64("max")?.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&min) || !(0.0..=1.0).contains(&max) || min > max {
        return Err(f.invalid(format!(
            "min and max are shares from 0 to 1 with min ≤ max, not {min} and {max}"
        )));
    }
    Ok(ExpectKind::Share { node, min, max })
}

/// Parses one `[[expect]]` table; `steps` are the timeline's (for `double_spend_resolved`).
pub(crate) fn parse_expect(
    line: usize,
    mut fields: Fields,
    steps: &[Step],
) -> Result<Expect, FileError> {
    let kind_name = fields.str("kind")?;
    let Some(def) = EXPECTS.iter().find(|d| d.name == kind_name) else {
        let names: Vec<&str> = EXPECTS.iter().map(|d| d.name).collect();
        return Err(fields.bad(
            "kind",
            format!("{kind_name:?} is not a kind ({})", names.join(", ")),
        ));
    };
    let name = fields.opt_str("name")?;
    let kind = (def.parse)(&mut fields, steps)?;
    fields.finish(&format!("kind, name, {}", def.fields))?;
    Ok(Expect {
        name: name.unwrap_or_else(|| describe(&kind)),
        line,
        kind,
    })
}

/// The default name of an expectation.
pub fn describe(kind: &ExpectKind) -> String {
    match kind {
        ExpectKind::Converges(t) => format!("converges within {}s", t.as_secs_f64()),
        ExpectKind::MaxReorg(k) => format!("no reorg deeper than {k}"),
        ExpectKind::DoubleSpendResolved(step) => {
            format!("exactly one of double spend {step:?} confirmed everywhere")
        }
        ExpectKind::Share { node, min, max } => format!("{node} mines {min}–{max} of the blocks"),
        ExpectKind::Banned(node) => format!("{node} banned by every honest node"),
        ExpectKind::MinHeight { height, node } => match node {
            Some(n) => format!("{n} at height ≥ {height}"),
            None => format!("every node at height ≥ {height}"),
        },
    }
}

/// What a double-spend step sent and where each transaction ended up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoubleSpendSeen {
    /// The two txids.
    pub txids: [String; 2],
    /// Running node → whether each transaction is confirmed on its active chain.
    pub confirmed: BTreeMap<String, [bool; 2]>,
}

/// What a run gathered that expectations are checked against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Seconds from the last heal or restart (or the timeline's end) to agreement, if seen.
    pub convergence_secs: Option<f64>,
    /// Every reorganisation's depth.
    pub reorg_depths: Vec<u64>,
    /// Scenario blocks on the final chain, by miner.
    pub blocks_by_node: BTreeMap<String, u64>,
    /// Running node → its height at the end (`None`: it did not answer).
    pub heights: BTreeMap<String, Option<u64>>,
    /// Double-spend step name → what happened to its transactions.
    pub double_spends: BTreeMap<String, DoubleSpendSeen>,
    /// Running honest node → the names of the nodes in its `listbanned` at the end.
    pub bans: BTreeMap<String, BTreeSet<String>>,
}

/// Whether `expect` holds, and why (or why not).
pub fn check(expect: &Expect, ev: &Evidence) -> (bool, String) {
    match &expect.kind {
        ExpectKind::Converges(within) => match ev.convergence_secs {
            Some(t) if t <= within.as_secs_f64() => (true, format!("converged after {t:.1}s")),
            Some(t) => (false, format!("converged only after {t:.1}s")),
            None => (
                false,
                format!(
                    "the nodes did not agree on a tip within {}s",
                    within.as_secs_f64()
                ),
            ),
        },
        ExpectKind::MaxReorg(k) => {
            let deepest = ev.reorg_depths.iter().copied().max().unwrap_or(0);
            (
                deepest <= *k,
                format!("deepest reorg {deepest} ({} reorgs)", ev.reorg_depths.len()),
            )
        }
        ExpectKind::DoubleSpendResolved(step) => check_double_spend(step, ev),
        ExpectKind::Share { node, min, max } => {
            let total: u64 = ev.blocks_by_node.values().sum();
            let mine = ev.blocks_by_node.get(node).copied().unwrap_or(0);
            if total == 0 {
                return (false, "no scenario blocks on the final chain".into());
            }
            let share = mine as f64 / total as f64;
            (
                (*min..=*max).contains(&share),
                format!("{node} mined {mine} of {total} blocks ({share:.2})"),
            )
        }
        ExpectKind::MinHeight { height, node } => {
            let low: Vec<String> = ev
                .heights
                .iter()
                .filter(|(name, _)| node.as_ref().is_none_or(|n| n == *name))
                .filter(|(_, h)| h.is_none_or(|h| h < *height))
                .map(|(name, h)| match h {
                    Some(h) => format!("{name} at {h}"),
                    None => format!("{name} did not answer"),
                })
                .collect();
            if low.is_empty() {
                (true, format!("heights {}", heights_text(&ev.heights)))
            } else {
                (false, low.join(", "))
            }
        }
        ExpectKind::Banned(node) => check_banned(node, ev),
    }
}

fn check_banned(node: &str, ev: &Evidence) -> (bool, String) {
    let not: Vec<&str> = ev
        .bans
        .iter()
        .filter(|(by, banned)| *by != node && !banned.contains(node))
        .map(|(by, _)| by.as_str())
        .collect();
    match (ev.bans.keys().any(|by| by != node), not.is_empty()) {
        (false, _) => (false, "no honest node was running to ban it".into()),
        (true, true) => (
            true,
            format!(
                "banned by {}",
                ev.bans
                    .keys()
                    .filter(|b| *b != node)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (true, false) => (false, format!("not banned by {}", not.join(", "))),
    }
}

fn heights_text(heights: &BTreeMap<String, Option<u64>>) -> String {
    heights
        .iter()
        .map(|(n, h)| format!("{n}={}", h.map_or("?".into(), |h| h.to_string())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_double_spend(step: &str, ev: &Evidence) -> (bool, String) {
    let Some(seen) = ev.double_spends.get(step) else {
        return (
            false,
            format!("step {step:?} did not send its transactions"),
        );
    };
    let mut winners = std::collections::BTreeSet::new();
    for (node, both) in &seen.confirmed {
        match both {
            [true, true] => return (false, format!("{node} confirmed both (impossible)")),
            [false, false] => return (false, format!("{node} confirmed neither")),
            [first, _] => winners.insert(if *first { 0 } else { 1 }),
        };
    }
    match winners.into_iter().collect::<Vec<_>>().as_slice() {
        [w] => (
            true,
            format!(
                "{} confirmed on every node, {} on none",
                short(&seen.txids[*w]),
                short(&seen.txids[1 - w])
            ),
        ),
        [] => (false, "no running node to ask".into()),
        _ => (false, "the nodes confirmed different transactions".into()),
    }
}

fn short(txid: &str) -> &str {
    &txid[..txid.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::file::parse;
    use std::time::Duration;

    fn expect(kind: ExpectKind) -> Expect {
        Expect {
            name: describe(&kind),
            line: 1,
            kind,
        }
    }

    #[test]
    fn convergence_and_reorg_depth() {
        let ev = Evidence {
            convergence_secs: Some(4.0),
            reorg_depths: vec![1, 3],
            ..Evidence::default()
        };
        let within = |s| check(&expect(ExpectKind::Converges(Duration::from_secs(s))), &ev).0;
        assert!(within(5));
        assert!(!within(3));
        assert!(check(&expect(ExpectKind::MaxReorg(3)), &ev).0);
        let (ok, detail) = check(&expect(ExpectKind::MaxReorg(2)), &ev);
        assert!(!ok && detail.contains("deepest reorg 3"), "{detail}");
        let never = Evidence::default();
        assert!(
            !check(
                &expect(ExpectKind::Converges(Duration::from_secs(9))),
                &never
            )
            .0
        );
    }

    #[test]
    fn shares_and_heights() {
        let ev = Evidence {
            blocks_by_node: [("node0".into(), 3), ("node1".into(), 1)].into(),
            heights: [("node0".into(), Some(5)), ("node1".into(), Some(4))].into(),
            ..Evidence::default()
        };
        let share = |min, max| {
            check(
                &expect(ExpectKind::Share {
                    node: "node0".into(),
                    min,
                    max,
                }),
                &ev,
            )
            .0
        };
        assert!(share(0.7, 0.8));
        assert!(!share(0.0, 0.5));
        let height = |h, node: Option<&str>| {
            check(
                &expect(ExpectKind::MinHeight {
                    height: h,
                    node: node.map(String::from),
                }),
                &ev,
            )
        };
        assert!(height(4, None).0);
        let (ok, detail) = height(5, None);
        assert!(!ok && detail == "node1 at 4", "{detail}");
        assert!(height(5, Some("node0")).0);
    }

    #[test]
    fn banned_by_every_other_honest_node() {
        let bans = |lists: &[(&str, &[&str])]| Evidence {
            bans: lists
                .iter()
                .map(|(by, b)| (by.to_string(), b.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..Evidence::default()
        };
        let banned = |ev: &Evidence| check(&expect(ExpectKind::Banned("node2".into())), ev);
        let ok = banned(&bans(&[
            ("node0", &["node2"]),
            ("node1", &["node2", "node3"]),
        ]));
        assert_eq!(ok, (true, "banned by node0, node1".to_string()));
        let half = banned(&bans(&[("node0", &["node2"]), ("node1", &[])]));
        assert_eq!(half, (false, "not banned by node1".to_string()));
        assert!(!banned(&bans(&[])).0);
    }

    #[test]
    fn exactly_one_of_a_double_spend_everywhere() {
        let seen = |a: [bool; 2], b: [bool; 2]| Evidence {
            double_spends: [(
                "ds".into(),
                DoubleSpendSeen {
                    txids: ["aa".into(), "bb".into()],
                    confirmed: [("node0".into(), a), ("node1".into(), b)].into(),
                },
            )]
            .into(),
            ..Evidence::default()
        };
        let e = expect(ExpectKind::DoubleSpendResolved("ds".into()));
        assert!(check(&e, &seen([false, true], [false, true])).0);
        assert!(!check(&e, &seen([true, false], [false, true])).0);
        assert!(!check(&e, &seen([false, false], [false, true])).0);
        assert!(!check(&e, &Evidence::default()).0);
    }

    #[test]
    fn expectations_parse_and_refer_to_real_steps() {
        let head = "[testnet]\nnodes = 2\n\n[[step]]\nname = \"ds\"\naction = \"double-spend\"\n\
                    to = \"node0\"\nto2 = \"node1\"\namount = 5\nnode2 = \"node1\"\n\n";
        let ok = parse(
            &format!("{head}[[expect]]\nkind = \"double_spend_resolved\"\nstep = \"ds\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            ok.expects[0].kind,
            ExpectKind::DoubleSpendResolved("ds".into())
        );
        let e = parse(
            &format!("{head}[[expect]]\nkind = \"double_spend_resolved\"\nstep = \"other\"\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("expectation 1 (line 12)") && e.contains("field `step`"),
            "{e}"
        );
        let e = parse(&format!("{head}[[expect]]\nkind = \"faster\"\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("converges") && e.contains("field `kind`"), "{e}");
        let e = parse(
            &format!(
                "{head}[[expect]]\nkind = \"share\"\nnode = \"node0\"\nmin = 0.9\nmax = 0.1\n"
            ),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("min ≤ max"), "{e}");
    }
}
