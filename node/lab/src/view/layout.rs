//! Where blocks go on screen: lanes (columns) for the branches and folds for the long linear
//! runs, computed once here for the page and for `--text`. Pure.
//!
//! Lane 0 is the chain of the tip most nodes are on; every other branch gets the lowest lane
//! whose height range it does not overlap, so a long history of short forks stays a few
//! columns wide. A run is folded only where nothing could be lost: every block of it is on
//! every up node's active chain, nobody's tip, not a fork point nor the first block of a
//! branch, and alone at its height (so a fold is one row of the drawing).

use super::merge::{Fold, TreeView};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Runs shorter than this are drawn block by block.
pub const MIN_FOLD: u32 = 4;

/// Sets every block's `lane`, the view's `lanes` count and its `folds`.
pub fn lay_out(view: &mut TreeView) {
    assign_lanes(view);
    view.folds = folds(view);
}

fn assign_lanes(view: &mut TreeView) {
    let index: HashMap<&str, usize> = view
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.hash.as_str(), i))
        .collect();
    let parent: Vec<Option<usize>> = view
        .blocks
        .iter()
        .map(|b| index.get(b.parent.as_str()).copied())
        .collect();
    let mut has_child = vec![false; view.blocks.len()];
    for p in parent.iter().flatten() {
        has_child[*p] = true;
    }
    let tip_count = |hash: &str| {
        view.nodes
            .iter()
            .filter(|n| n.tip.as_deref() == Some(hash))
            .count()
    };
    let mut leaves: Vec<usize> = (0..view.blocks.len()).filter(|i| !has_child[*i]).collect();
    leaves.sort_by_key(|&i| {
        let b = &view.blocks[i];
        (
            std::cmp::Reverse(tip_count(&b.hash)),
            std::cmp::Reverse(b.active_on.len()),
            std::cmp::Reverse(b.height),
            b.hash.clone(),
        )
    });
    let mut lane_of: Vec<Option<usize>> = vec![None; view.blocks.len()];
    // Height ranges taken in each lane, [low, high] inclusive.
    let mut taken: Vec<Vec<(u32, u32)>> = Vec::new();
    for leaf in leaves {
        let mut path = Vec::new();
        let mut at = Some(leaf);
        while let Some(i) = at {
            if lane_of[i].is_some() {
                break;
            }
            path.push(i);
            at = parent[i];
        }
        let high = view.blocks[leaf].height;
        let lowest = *path.last().expect("a leaf has no lane yet");
        // The branch's line reaches down to its fork point's row.
        let low = match parent[lowest] {
            Some(p) => view.blocks[p].height,
            None => view.blocks[lowest].height,
        };
        let lane = if taken.is_empty() {
            0
        } else {
            (1..)
                .find(|&l| {
                    taken
                        .get(l)
                        .is_none_or(|r| r.iter().all(|&(lo, hi)| high < lo || low > hi))
                })
                .expect("some lane is free")
        };
        if taken.len() <= lane {
            taken.resize(lane + 1, Vec::new());
        }
        taken[lane].push((low, high));
        for i in path {
            lane_of[i] = Some(lane);
        }
    }
    for (b, lane) in view.blocks.iter_mut().zip(lane_of) {
        b.lane = lane.unwrap_or(0);
    }
    view.lanes = taken.len();
}

fn folds(view: &TreeView) -> Vec<Fold> {
    let up: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| n.up)
        .map(|n| n.name.as_str())
        .collect();
    if up.is_empty() || view.blocks.is_empty() {
        return Vec::new();
    }
    let tips: HashSet<&str> = view.nodes.iter().filter_map(|n| n.tip.as_deref()).collect();
    let mut children: HashMap<&str, usize> = HashMap::new();
    for b in &view.blocks {
        *children.entry(b.parent.as_str()).or_default() += 1;
    }
    let parent_forks = |parent: &str| children.get(parent).copied().unwrap_or(0) >= 2;
    let top = view.blocks.iter().map(|b| b.height).max().unwrap_or(0);
    let bottom = view.blocks.iter().map(|b| b.height).min().unwrap_or(0);
    let must_draw = |b: &super::merge::MergedBlock| {
        !up.iter().all(|n| b.active_on.iter().any(|a| a == n))
            || tips.contains(b.hash.as_str())
            || children.get(b.hash.as_str()).copied().unwrap_or(0) >= 2
            || parent_forks(&b.parent)
            || b.height == top
            || b.height == bottom
    };
    let drawn_heights: BTreeSet<u32> = view
        .blocks
        .iter()
        .filter(|b| must_draw(b))
        .map(|b| b.height)
        .collect();
    let mut folds = Vec::new();
    let mut run: Vec<&super::merge::MergedBlock> = Vec::new();
    let mut flush = |run: &mut Vec<&super::merge::MergedBlock>| {
        if run.len() as u32 >= MIN_FOLD {
            let (first, last) = (run[0], run[run.len() - 1]);
            folds.push(Fold {
                top: last.hash.clone(),
                top_height: last.height,
                bottom: first.hash.clone(),
                bottom_height: first.height,
                count: run.len() as u32,
            });
        }
        run.clear();
    };
    // Blocks are sorted by height, so the foldable ones come in height order.
    for b in &view.blocks {
        if drawn_heights.contains(&b.height) {
            flush(&mut run);
            continue;
        }
        if run.last().is_some_and(|l| l.height + 1 != b.height) {
            flush(&mut run);
        }
        run.push(b);
    }
    flush(&mut run);
    folds
}

#[cfg(test)]
mod tests {
    use super::super::merge::tests::{forked, node, tb};
    use super::super::merge::{NodeSnapshot, merge};
    use cairn_rpc::types::BlockStatus::{self, *};

    /// A chain g=0 ← 1 ← … ← len-1, named `h{height}`, with `status`.
    fn chain(len: u32, status: BlockStatus) -> Vec<cairn_rpc::types::TreeBlock> {
        (0..len)
            .map(|h| {
                let parent = if h == 0 {
                    String::new()
                } else {
                    format!("h{}", h - 1)
                };
                tb(&format!("h{h}"), &parent, h, status)
            })
            .collect()
    }

    #[test]
    fn the_chain_most_nodes_follow_is_lane_zero() {
        let view = merge(&forked(), 0);
        let lane = |h: &str| view.block(h).unwrap().lane;
        assert_eq!(view.lanes, 3);
        // node0's b1 and node1's c2 each have one node; c2 is higher, so lane 0.
        assert_eq!(lane("c2"), 0);
        assert_eq!(lane("c1"), 0);
        assert_eq!(lane("a"), 0);
        assert_ne!(lane("b1"), 0);
        assert_ne!(lane("x"), 0);
        assert_ne!(lane("b1"), lane("x"));
    }

    #[test]
    fn branches_at_different_heights_share_a_lane() {
        let mut blocks = chain(20, Active);
        blocks.push(tb("s3", "h2", 3, Side));
        blocks.push(tb("s12", "h11", 12, Side));
        let view = merge(&[node("node0", "h19", 19, blocks)], 0);
        assert_eq!(view.block("s3").unwrap().lane, 1);
        assert_eq!(view.block("s12").unwrap().lane, 1);
        assert_eq!(view.lanes, 2);
    }

    #[test]
    fn long_common_runs_fold_but_forks_tips_and_branches_stay() {
        let mut blocks = chain(30, Active);
        blocks.push(tb("s11", "h10", 11, Side));
        blocks.push(tb("s12", "s11", 12, Side));
        let view = merge(
            &[
                node("node0", "h29", 29, blocks.clone()),
                node("node1", "h29", 29, blocks),
            ],
            0,
        );
        let folded: Vec<(u32, u32, u32)> = view
            .folds
            .iter()
            .map(|f| (f.bottom_height, f.top_height, f.count))
            .collect();
        // h0 (bottom) drawn; h1..h9 fold; h10 forks, h11/h12 have stale siblings;
        // h13..h28 fold; h29 is the tip.
        assert_eq!(folded, [(1, 9, 9), (13, 28, 16)]);
        assert_eq!(view.folds[0].bottom, "h1");
        assert_eq!(view.folds[1].top, "h28");
    }

    #[test]
    fn nothing_folds_that_some_node_is_not_on() {
        let mut blocks = chain(12, Active);
        blocks.truncate(12);
        let behind: Vec<_> = chain(6, Active);
        let view = merge(
            &[
                node("node0", "h11", 11, blocks),
                node("node1", "h5", 5, behind),
            ],
            0,
        );
        // h1..h4 are everyone's; h5 is node1's tip; h6..h10 only node0's.
        let folded: Vec<(u32, u32)> = view
            .folds
            .iter()
            .map(|f| (f.bottom_height, f.top_height))
            .collect();
        assert_eq!(folded, [(1, 4)]);
        let down = NodeSnapshot {
            up: false,
            ..node("node2", "h0", 0, vec![])
        };
        let mut with_down = vec![node("node0", "h11", 11, chain(12, Active)), down];
        let view = merge(&with_down, 0);
        assert_eq!(view.folds.len(), 1, "a down node does not stop folding");
        with_down[0].up = false;
        assert!(merge(&with_down, 0).folds.is_empty());
    }
}
