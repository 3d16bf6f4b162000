//! The fork view's server-side cost at the size the page must stay smooth at: 5,000 blocks
//! known to each of 10 nodes (`cargo bench -p cairn-lab --bench view`).
//!
//! - `reference/encode_inputs`: serde_json encoding of the 10 nodes' `BlockTree`s, what the
//!   nodes themselves spend to answer one `getblocktree` each: the yardstick.
//! - `tree/merge_layout`: `merge::merge` of the 10 snapshots (who is on what, statuses,
//!   lanes, folds), what every `/api/tree` pays.
//! - `tree/merge_layout_encode`: the same plus encoding the answer, the whole `/api/tree`.
//!
//! The chain: one main chain of 5,000 blocks every node is on (the last node 3 blocks
//! behind), with a one-block stale fork every 50 heights that half of the nodes know. The
//! ratios to the reference are printed at the end.

use cairn_lab::view::merge::{self, NodeSnapshot};
use cairn_rpc::types::BlockTree;
use criterion::Criterion;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{BLOCKS, NODES, STALE_EVERY, trees_with};

fn snapshots(trees: &[BlockTree]) -> Vec<NodeSnapshot> {
    trees
        .iter()
        .enumerate()
        .map(|(k, t)| NodeSnapshot {
            name: format!("node{k}"),
            up: true,
            live: true,
            tip: Some(t.tip.clone()),
            height: Some(t.height),
            blocks: t.blocks.clone(),
            ..NodeSnapshot::default()
        })
        .collect()
}

fn median(c: &mut Criterion, name: &str, mut f: impl FnMut()) -> Duration {
    let mut samples = Vec::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                f();
            }
            let took = started.elapsed();
            samples.push(took / iters as u32);
            took
        })
    });
    samples.sort();
    samples[samples.len() / 2]
}

fn bench(c: &mut Criterion) {
    let trees = trees_with(STALE_EVERY);
    let snaps = snapshots(&trees);
    let view = merge::merge(&snaps, 0);
    let encoded = serde_json::to_vec(&view).expect("serialises").len();
    let reference = median(c, "reference/encode_inputs", || {
        for t in &trees {
            black_box(serde_json::to_vec(t).expect("serialises"));
        }
    });
    let merge_only = median(c, "tree/merge_layout", || {
        black_box(merge::merge(black_box(&snaps), 0));
    });
    let whole = median(c, "tree/merge_layout_encode", || {
        let view = merge::merge(black_box(&snaps), 0);
        black_box(serde_json::to_vec(&view).expect("serialises"));
    });
    let ratio = |d: Duration| d.as_secs_f64() / reference.as_secs_f64();
    println!(
        "\nview at {NODES} nodes x {BLOCKS} blocks: {} merged blocks, {} folds, {} lanes, {} KiB of JSON",
        view.blocks.len(),
        view.folds.len(),
        view.lanes,
        encoded / 1024
    );
    println!(
        "reference encode_inputs {:.2} ms | merge_layout {:.2} ms (ratio {:.2}) | merge_layout_encode {:.2} ms (ratio {:.2})",
        reference.as_secs_f64() * 1e3,
        merge_only.as_secs_f64() * 1e3,
        ratio(merge_only),
        whole.as_secs_f64() * 1e3,
        ratio(whole)
    );
}

/// The group, in a private module: `criterion_group!` defines an undocumented `pub fn`.
mod group {
    use super::{Duration, bench};
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
        targets = bench
    }
}
criterion::criterion_main!(group::benches);
