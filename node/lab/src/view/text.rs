//! `cairn testnet view --text`: the merged tree as a `git log --graph`-style drawing, newest
//! first, one block a line (height, short hash, tx count), each node's name beside its tip,
//! stale and invalid blocks marked. Lanes come from [`super::layout`]; no folding, since the
//! text shows only the last N heights.

use super::merge::{MergedBlock, TreeView, ViewStatus};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Characters of a hash shown.
const SHORT_HASH: usize = 12;

/// A run of a lane between two heights: a branch, or the part of one in the view.
#[derive(Debug, Clone, Copy)]
struct Segment {
    lane: usize,
    bottom: u32,
    top: u32,
    /// Lane and height of the parent of the bottom block, when it is in the view on another
    /// lane (the fork point the branch joins).
    joins: Option<(usize, u32)>,
}

fn segments(view: &TreeView) -> Vec<Segment> {
    let by_hash: HashMap<&str, &MergedBlock> =
        view.blocks.iter().map(|b| (b.hash.as_str(), b)).collect();
    let mut lanes: Vec<Vec<&MergedBlock>> = vec![Vec::new(); view.lanes.max(1)];
    for b in &view.blocks {
        if let Some(lane) = lanes.get_mut(b.lane) {
            lane.push(b);
        }
    }
    let mut out = Vec::new();
    for (lane, mut blocks) in lanes.into_iter().enumerate() {
        blocks.sort_by_key(|b| b.height);
        let mut current: Option<Segment> = None;
        let mut last: Option<&str> = None;
        for b in blocks {
            let continues = last == Some(b.parent.as_str());
            if !continues {
                if let Some(s) = current.take() {
                    out.push(s);
                }
                let joins = by_hash
                    .get(b.parent.as_str())
                    .filter(|p| p.lane != lane)
                    .map(|p| (p.lane, p.height));
                current = Some(Segment {
                    lane,
                    bottom: b.height,
                    top: b.height,
                    joins,
                });
            } else if let Some(s) = current.as_mut() {
                s.top = b.height;
            }
            last = Some(b.hash.as_str());
        }
        out.extend(current);
    }
    out
}

fn spans(segments: &[Segment], lane: usize, low: u32, high: u32) -> bool {
    segments
        .iter()
        .any(|s| s.lane == lane && s.bottom <= low && s.top >= high)
}

/// The drawing of `view`, one line per block, newest first, then one line per node that is
/// down.
pub fn render(view: &TreeView) -> String {
    let segments = segments(view);
    let lanes = view.lanes.max(1);
    let mut rows: Vec<&MergedBlock> = view.blocks.iter().collect();
    rows.sort_by(|a, b| b.height.cmp(&a.height).then(a.lane.cmp(&b.lane)));
    let mut tips: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &view.nodes {
        if let Some(t) = &n.tip {
            tips.entry(t.as_str()).or_default().push(n.name.as_str());
        }
    }
    let width = 2 * lanes;
    let mut out = String::new();
    for b in rows {
        let mut graph = String::new();
        for lane in 0..lanes {
            let c = if lane == b.lane {
                '*'
            } else if spans(&segments, lane, b.height, b.height) {
                '|'
            } else {
                ' '
            };
            graph.push(c);
            graph.push(' ');
        }
        let short = &b.hash[..b.hash.len().min(SHORT_HASH)];
        let txs = b.txs.map_or("?".to_owned(), |n| n.to_string());
        let mut line = format!("{graph:<width$} {:>6}  {short}  {txs:>3} tx", b.height);
        if let Some(names) = tips.get(b.hash.as_str()) {
            let _ = write!(line, "  <- {}", names.join(" "));
        }
        match b.status {
            ViewStatus::Stale => line.push_str("  (stale)"),
            ViewStatus::Invalid => {
                let _ = write!(line, "  (invalid on {})", b.invalid_on.join(" "));
            }
            ViewStatus::Active => {}
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for s in segments
            .iter()
            .filter(|s| s.lane == b.lane && s.bottom == b.height)
        {
            if let Some((to, at)) = s.joins {
                out.push_str(connector(&segments, lanes, s.lane, to, at).trim_end());
                out.push('\n');
            }
        }
    }
    for n in view.nodes.iter().filter(|n| !n.up) {
        let _ = writeln!(out, "{} is down", n.name);
    }
    out
}

/// The line that joins a branch in lane `from` to its fork point in lane `to` at height
/// `at`: `|/`, `| \`, or `|_/` across lanes in between.
fn connector(segments: &[Segment], lanes: usize, from: usize, to: usize, at: u32) -> String {
    let mut cells: Vec<char> = vec![' '; 2 * lanes];
    for lane in 0..lanes {
        if lane != from && spans(segments, lane, at, at + 1) {
            cells[2 * lane] = '|';
        }
    }
    let (low, high) = (from.min(to), from.max(to));
    for cell in cells.iter_mut().take(2 * high).skip(2 * low + 1) {
        if *cell == ' ' {
            *cell = '_';
        }
    }
    if from > to {
        cells[2 * from - 1] = '/';
    } else {
        cells[2 * from + 1] = '\\';
    }
    cells.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::super::merge::tests::{forked, node, tb};
    use super::super::merge::{NodeSnapshot, merge};
    use super::*;
    use cairn_rpc::types::BlockStatus::*;

    fn hash(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn a_fork_draws_like_git_log_graph() {
        let view = merge(&forked(), 0);
        // x, invalid on node1, hangs off c1 in the third lane; b1, node0's tip, in the second.
        let expected = "\
*   |       3  c2    1 tx  <- node1
|   *       3  x    1 tx  (invalid on node1)
|__/
* |         2  c1    1 tx
| *         2  b1    1 tx  <- node0
|/
*           1  a    1 tx
*           0  g    1 tx
";
        assert_eq!(render(&view), expected);
    }

    #[test]
    fn a_healed_fork_shows_the_stale_block_and_every_tip() {
        let (g, a, b1, c1, c2) = (hash('0'), hash('a'), hash('b'), hash('c'), hash('d'));
        let blocks = |b1_status| {
            vec![
                tb(&g, "", 0, Active),
                tb(&a, &g, 1, Active),
                tb(&b1, &a, 2, b1_status),
                tb(&c1, &a, 2, Active),
                tb(&c2, &c1, 3, Active),
            ]
        };
        let down = NodeSnapshot {
            up: false,
            ..node("node2", &a, 1, vec![])
        };
        let view = merge(
            &[
                node("node0", &c2, 3, blocks(Side)),
                node("node1", &c2, 3, blocks(Side)),
                down,
            ],
            0,
        );
        let expected = "\
*         3  dddddddddddd    1 tx  <- node0 node1
* |       2  cccccccccccc    1 tx
| *       2  bbbbbbbbbbbb    1 tx  (stale)
|/
*         1  aaaaaaaaaaaa    1 tx  <- node2
*         0  000000000000    1 tx
node2 is down
";
        assert_eq!(render(&view), expected);
    }
}
