//! The merkle tree a header commits to.
//!
//! Two changes from Bitcoin close its known ambiguities:
//! - **CVE-2012-2459**: Bitcoin pairs an odd last node with itself, so `[a, b, c]` and
//!   `[a, b, c, c]` share a root and a valid block can be "mutated" into an invalid one with
//!   the same hash. Here an odd last node is promoted to the next level unpaired.
//! - **64-byte transactions**: a leaf and an inner node are hashed under different prefixes
//!   (`0x00` for leaves, `0x01` for inner nodes), so no leaf can pose as an inner node.
//!
//! Leaves are [`Wtxid`]s, so the root commits to signatures too.

use crate::hash::{Hash256, MerkleRoot, Wtxid, sha256d_parts};
use rayon::prelude::*;

/// Levels at least this wide are hashed on every core: a full block's tree is about two
/// thousand hashes, checked while nothing else can run; a pool wake-up costs about as much
/// as a few dozen hashes.
const PARALLEL_MIN_NODES: usize = 256;

const LEAF_PREFIX: &[u8] = &[0x00];
const NODE_PREFIX: &[u8] = &[0x01];

fn leaf_hash(wtxid: &Wtxid) -> Hash256 {
    sha256d_parts(&[LEAF_PREFIX, wtxid.as_bytes()])
}

fn node_hash(left: &Hash256, right: &Hash256) -> Hash256 {
    sha256d_parts(&[NODE_PREFIX, &left.0, &right.0])
}

/// The merkle root of `wtxids` (the zero hash for an empty list, which no valid block has).
pub fn merkle_root(wtxids: &[Wtxid]) -> MerkleRoot {
    if wtxids.is_empty() {
        return MerkleRoot::ZERO;
    }
    let mut level: Vec<Hash256> = if wtxids.len() >= PARALLEL_MIN_NODES {
        wtxids.par_iter().map(leaf_hash).collect()
    } else {
        wtxids.iter().map(leaf_hash).collect()
    };
    while level.len() > 1 {
        level = if level.len() >= PARALLEL_MIN_NODES {
            level.par_chunks(2).map(parent).collect()
        } else {
            level.chunks(2).map(parent).collect()
        };
    }
    MerkleRoot(level[0])
}

/// The node above `pair`: their hash, or the odd last node promoted unpaired.
fn parent(pair: &[Hash256]) -> Hash256 {
    match pair {
        [left, right] => node_hash(left, right),
        [single] => *single,
        _ => unreachable!("chunks(2) yields one or two items"),
    }
}

/// The siblings on the path from the coinbase (leaf 0) to the root: with them a miner rolling
/// the extranonce rehashes one leaf and `log2(n)` nodes instead of the whole tree.
pub fn coinbase_branch(wtxids: &[Wtxid]) -> Vec<Hash256> {
    let mut branch = Vec::new();
    let mut level: Vec<Hash256> = wtxids.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        branch.push(level[1]);
        level = level.chunks(2).map(parent).collect();
    }
    branch
}

/// The root given the coinbase's wtxid and its [`coinbase_branch`].
pub fn root_from_coinbase_branch(coinbase: &Wtxid, branch: &[Hash256]) -> MerkleRoot {
    MerkleRoot(
        branch
            .iter()
            .fold(leaf_hash(coinbase), |acc, sibling| node_hash(&acc, sibling)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256d;

    fn ids(n: usize) -> Vec<Wtxid> {
        (0..n)
            .map(|i| Wtxid(sha256d(&(i as u64).to_le_bytes())))
            .collect()
    }

    #[test]
    fn duplicate_last_leaf_does_not_give_the_same_root() {
        // CVE-2012-2459: [a,b,c] vs [a,b,c,c].
        let three = ids(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(merkle_root(&three), merkle_root(&four));
        let mut six = ids(5);
        six.push(six[4]);
        assert_ne!(merkle_root(&ids(5)), merkle_root(&six));
    }

    #[test]
    fn leaves_cannot_pose_as_inner_nodes() {
        let two = ids(2);
        let inner = node_hash(&leaf_hash(&two[0]), &leaf_hash(&two[1]));
        // A single leaf whose wtxid equals the inner node's hash must not reproduce the root.
        assert_ne!(merkle_root(&[Wtxid(inner)]), merkle_root(&two));
    }

    /// The branch is built level by level on one thread: it is also the reference for the
    /// wide levels `merkle_root` hashes in parallel.
    #[test]
    fn coinbase_branch_reproduces_the_root() {
        let wide = [255, 256, 257, 511, 512, 513, 1001];
        for n in (1..20).chain(wide) {
            let leaves = ids(n);
            let branch = coinbase_branch(&leaves);
            assert_eq!(
                root_from_coinbase_branch(&leaves[0], &branch),
                merkle_root(&leaves),
                "n={n}"
            );
        }
    }

    #[test]
    fn order_matters() {
        let mut leaves = ids(4);
        let root = merkle_root(&leaves);
        leaves.swap(1, 2);
        assert_ne!(root, merkle_root(&leaves));
    }
}
