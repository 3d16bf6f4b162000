//! The synthetic testnet of the view's benchmark and load example: one main chain every
//! node is on (the last node 3 blocks behind), with a one-block stale fork every
//! `STALE_EVERY` heights that half of the nodes know.

use cairn_rpc::types::{BlockStatus, BlockTree, TreeBlock};

/// Nodes.
pub const NODES: usize = 10;
/// Blocks on the main chain.
pub const BLOCKS: u32 = 5_000;
/// Heights between stale forks.
pub const STALE_EVERY: u32 = 50;

/// A block hash made of a tag and a height.
pub fn hash(tag: char, height: u32) -> String {
    format!("{tag}{height:063x}")
}

/// Every node's tree, with a stale fork every `stale_every` heights.
pub fn trees_with(stale_every: u32) -> Vec<BlockTree> {
    (0..NODES)
        .map(|k| {
            let top = if k == NODES - 1 {
                BLOCKS - 4
            } else {
                BLOCKS - 1
            };
            let mut blocks = Vec::new();
            for h in 0..=top {
                let parent = if h == 0 {
                    String::new()
                } else {
                    hash('a', h - 1)
                };
                blocks.push(TreeBlock {
                    hash: hash('a', h),
                    parent,
                    height: h,
                    time: 1_700_000_000 + u64::from(h) * 600,
                    txs: Some(1 + (h as usize % 7)),
                    status: BlockStatus::Active,
                    first_seen_ms: Some(1_700_000_000_000 + u64::from(h) * 600_000 + k as u64 * 40),
                });
                if h > 0 && h % stale_every == 0 && k % 2 == 0 {
                    blocks.push(TreeBlock {
                        hash: hash('f', h),
                        parent: hash('a', h - 1),
                        status: BlockStatus::Side,
                        ..blocks.last().expect("just pushed").clone()
                    });
                }
            }
            BlockTree {
                tip: hash('a', top),
                height: top,
                from: 0,
                blocks,
            }
        })
        .collect()
}
