//! Fork choice against a brute-force model.
//!
//! A random block tree (with transactions, including conflicting spends on different
//! branches and chains of spends inside one block) is built with the testkit, then some of
//! its headers are announced and its bodies delivered in a random order to a fresh node:
//! children often arrive before parents and wait in the orphan pool, or are stored without
//! their ancestors' bodies (headers-first).
//!
//! The model: a block is *complete* once it and all its ancestors have been delivered. After
//! every delivery the node's tip must be a complete block of maximal height (regtest blocks
//! all carry the same work), and among those one that became complete first; if the
//! previous tip still qualifies the tip must not move (first seen wins, no flip-flopping).
//! The reported tip change, the active chain and the UTXO set (against a naive application
//! of the active chain and a replay into a fresh node) are checked after every delivery too.
//! Finally a random block is invalidated (the model excludes it and its descendants) and
//! reconsidered, and the store is reopened as after a restart.

use crate::support::*;
use cairn_core::chain::HeaderOutcome;
use cairn_core::testkit::TestChain;
use cairn_core::{Amount, Block, BlockHash, Coin, ImportOutcome, OutPoint, Transaction};
use proptest::collection::vec;
use proptest::prelude::*;

const MAX_BLOCKS: usize = 16;
const FEE: u64 = 1_000;

/// How a block of the tree is made and delivered.
#[derive(Debug, Clone)]
struct Plan {
    /// Picks the parent: half the time the previous block (long branches), else the one
    /// before it (competing siblings, equal-work ties) or any earlier block.
    parent: u32,
    /// 0: no transaction; 1: spend a chosen coin; 2: spend the oldest coin (the genesis
    /// allocations, so sibling branches conflict); 3: a chosen coin, then its output again
    /// in the same block.
    txs: u8,
    /// Picks the coin.
    coin: u32,
    /// Announce the header before any body arrives.
    header_first: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    plans: Vec<Plan>,
    /// Delivery order of the bodies (indices into `plans`).
    order: Vec<usize>,
    /// Picks the block to invalidate (and reconsider) once everything is delivered.
    invalidate: u32,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=MAX_BLOCKS)
        .prop_flat_map(|n| {
            let plan = (
                any::<u32>(),
                0u8..4,
                any::<u32>(),
                prop::bool::weighted(0.5),
            )
                .prop_map(|(parent, txs, coin, header_first)| Plan {
                    parent,
                    txs,
                    coin,
                    header_first,
                });
            (
                vec(plan, n),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                any::<bool>(),
                any::<u32>(),
            )
        })
        .prop_map(|(mut plans, order, headers, invalidate)| {
            if !headers {
                // Half the cases deliver bodies only.
                plans.iter_mut().for_each(|p| p.header_first = false);
            }
            Scenario {
                plans,
                order,
                invalidate,
            }
        })
}

/// The built tree. Node 0 is genesis; block `k` of the plan is node `k + 1`.
struct Tree {
    blocks: Vec<Option<Block>>,
    hash: Vec<BlockHash>,
    parent: Vec<usize>,
    height: Vec<u32>,
}

impl Tree {
    /// Nodes from just after genesis up to `id`, oldest first.
    fn path(&self, mut id: usize) -> Vec<usize> {
        let mut path = Vec::new();
        while id != 0 {
            path.push(id);
            id = self.parent[id];
        }
        path.reverse();
        path
    }

    fn block(&self, id: usize) -> &Block {
        self.blocks[id]
            .as_ref()
            .expect("only genesis has no built block")
    }
}

type Wallet = Vec<((OutPoint, Coin), u32)>;

fn build(kit: &mut TestChain, plans: &[Plan]) -> Tree {
    let maturity = kit.params().coinbase_maturity;
    let genesis_wallet: Wallet = (1..=4).map(|i| (kit.genesis_coin(i), i)).collect();
    let mut wallets = vec![genesis_wallet];
    let mut tree = Tree {
        blocks: vec![None],
        hash: vec![kit.params().genesis_hash],
        parent: vec![0],
        height: vec![0],
    };
    for (k, plan) in plans.iter().enumerate() {
        let parent = match plan.parent % 4 {
            0 | 1 => k,
            2 => k.saturating_sub(1),
            _ => (plan.parent / 4) as usize % (k + 1),
        };
        let height = tree.height[parent] + 1;
        let mut wallet = wallets[parent].clone();
        let mature: Vec<usize> = (0..wallet.len())
            .filter(|&i| {
                let coin = &wallet[i].0.1;
                !coin.is_coinbase || height - coin.height >= maturity
            })
            .collect();
        let mut txs: Vec<Transaction> = Vec::new();
        if plan.txs > 0 && !mature.is_empty() {
            let pick = if plan.txs == 2 {
                mature[0]
            } else {
                mature[plan.coin as usize % mature.len()]
            };
            let (coin, key) = wallet.remove(pick);
            let rest = coin.1.output.amount.to_base() - FEE;
            let tx = pay(kit, &coin, key, &[rest / 2, rest - rest / 2]);
            let mut created = vec![
                (coin_of(&tx, 0, height, false), key),
                (coin_of(&tx, 1, height, false), key),
            ];
            txs.push(tx);
            if plan.txs == 3 {
                let (coin, key) = created.remove(0);
                let child = pay(kit, &coin, key, &[coin.1.output.amount.to_base() - FEE]);
                created.push((coin_of(&child, 0, height, false), key));
                txs.push(child);
            }
            wallet.extend(created);
        }
        let fees = Amount::from_base(FEE * txs.len() as u64);
        let block = kit.block_on(&tree.hash[parent], txs, fees);
        wallet.push((coinbase_coin(&block, height), 0));
        wallets.push(wallet);
        tree.hash.push(block.block_hash());
        tree.blocks.push(Some(block));
        tree.parent.push(parent);
        tree.height.push(height);
    }
    tree
}

/// Checks the node's tip, active chain and reported tip change against the model: the best
/// tip among complete blocks not `excluded` (invalidated), most work first, then earliest
/// complete. When `sticky`, the old tip had the best rank among the blocks now candidates,
/// so if it is still among the best it must stay (no move between equals). Returns the
/// tip's id.
fn check_tip(
    node: &Node,
    tree: &Tree,
    complete_at: &[Option<usize>],
    excluded: &[bool],
    old_tip: usize,
    sticky: bool,
    tip_changed: &Option<cairn_core::TipChanged>,
) -> Result<usize, TestCaseError> {
    let n = tree.hash.len();
    let candidate = |j: usize| complete_at[j].is_some() && !excluded[j];
    let best_height = (0..n)
        .filter(|&j| candidate(j))
        .map(|j| tree.height[j])
        .max()
        .expect("genesis is always a candidate");
    let first_step = (0..n)
        .filter(|&j| candidate(j) && tree.height[j] == best_height)
        .filter_map(|j| complete_at[j])
        .min()
        .expect("some block has the best height");
    let acceptable: Vec<usize> = (0..n)
        .filter(|&j| {
            candidate(j) && tree.height[j] == best_height && complete_at[j] == Some(first_step)
        })
        .collect();
    let tip = tree
        .hash
        .iter()
        .position(|h| *h == node.tip().hash)
        .expect("the tip is in the tree");
    prop_assert!(
        acceptable.contains(&tip),
        "tip {} not among the model's best {:?}",
        tip,
        acceptable
    );
    if sticky && acceptable.contains(&old_tip) {
        prop_assert_eq!(tip, old_tip, "tip flipped between equals");
    }

    // The active chain is the tip's path.
    let path = tree.path(tip);
    prop_assert_eq!(node.height() as usize, path.len());
    for (h, &j) in path.iter().enumerate() {
        prop_assert_eq!(node.hash_at(h as u32 + 1), Some(tree.hash[j]));
    }

    // The reported change is the walk from the old tip to the new one.
    let old_path = tree.path(old_tip);
    let common = old_path
        .iter()
        .zip(&path)
        .take_while(|(a, b)| a == b)
        .count();
    if tip == old_tip {
        prop_assert_eq!(tip_changed, &None);
    } else {
        let changed = tip_changed.clone().expect("the tip moved");
        let reverted: Vec<BlockHash> = old_path[common..]
            .iter()
            .rev()
            .map(|&j| tree.hash[j])
            .collect();
        let connected: Vec<BlockHash> = path[common..].iter().map(|&j| tree.hash[j]).collect();
        let returned: Vec<Transaction> = old_path[common..]
            .iter()
            .flat_map(|&j| tree.block(j).txs[1..].to_vec())
            .collect();
        prop_assert_eq!(changed.reverted_hashes(), reverted);
        prop_assert_eq!(changed.connected_hashes(), connected);
        // Each moved block comes with its own body, height and txids.
        let moved = old_path[common..]
            .iter()
            .rev()
            .zip(&changed.reverted)
            .chain(path[common..].iter().zip(&changed.connected));
        for (&j, carried) in moved {
            prop_assert_eq!(&*carried.block, tree.block(j));
            prop_assert_eq!(carried.height, tree.height[j]);
            let txids: Vec<_> = carried.block.txs.iter().map(Transaction::txid).collect();
            prop_assert_eq!(&*carried.txids, &txids[..]);
        }
        prop_assert_eq!(changed.returned_txs, returned);
    }
    Ok(tip)
}

fn run(scenario: &Scenario) -> Result<(), TestCaseError> {
    let mut kit = regtest();
    let tree = build(&mut kit, &scenario.plans);
    let now = kit.now();
    let params = kit.params().clone();
    let n = tree.hash.len();
    let id_of = |hash: &BlockHash| tree.hash.iter().position(|h| h == hash);
    let mut node = fresh_node(&params);

    // Model state. `known`: in the node's block tree (header or body), so not an orphan.
    let mut known = vec![false; n];
    let mut delivered = vec![false; n];
    let mut complete_at: Vec<Option<usize>> = vec![None; n];
    known[0] = true;
    delivered[0] = true;
    complete_at[0] = Some(0);

    for id in 1..n {
        if scenario.plans[id - 1].header_first && known[tree.parent[id]] {
            let outcome = node
                .accept_header(&tree.block(id).header, now)
                .expect("memory store cannot fail");
            prop_assert_eq!(outcome, HeaderOutcome::New);
            known[id] = true;
        }
    }

    for (step, &k) in scenario.order.iter().enumerate() {
        let step = step + 1;
        let id = k + 1;
        let old_tip = id_of(&node.tip().hash).expect("the tip is in the tree");
        let report = accept(&mut node, tree.block(id), now);

        let orphan = !known[id] && !known[tree.parent[id]];
        delivered[id] = true;
        // Parents have smaller ids, so one pass in id order settles both closures.
        for j in 1..n {
            if delivered[j] && known[tree.parent[j]] {
                known[j] = true;
            }
            if delivered[j] && complete_at[j].is_none() && complete_at[tree.parent[j]].is_some() {
                complete_at[j] = Some(step);
            }
        }

        // The outcome of the delivered block.
        let expected = if orphan {
            ImportOutcome::Orphan
        } else if node.is_active(&tree.hash[id]) {
            ImportOutcome::Active
        } else {
            ImportOutcome::SideChain
        };
        prop_assert_eq!(&report.outcome, &expected, "block {} at step {}", id, step);

        let tip = check_tip(
            &node,
            &tree,
            &complete_at,
            &vec![false; n],
            old_tip,
            true,
            &report.tip_changed,
        )
        .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
        let path = tree.path(tip);

        // The UTXO set is that of the active chain applied from genesis, naively and by a
        // fresh node.
        let oracle = utxo_by_applying(&params, path.iter().map(|&j| tree.block(j)));
        prop_assert_eq!(&node.store().coins(), &oracle, "step {}", step);
        assert_utxo_matches_replay(&node, now);
    }
    prop_assert_eq!(node.orphan_count(), 0);

    // invalidateblock on any block: the best chain avoiding it and its descendants.
    let bad = 1 + scenario.invalidate as usize % (n - 1);
    let mut excluded = vec![false; n];
    for j in bad..n {
        excluded[j] = j == bad || excluded[tree.parent[j]];
    }
    let settled = id_of(&node.tip().hash).expect("the tip is in the tree");
    let changed = node
        .invalidate_block(&tree.hash[bad])
        .expect("memory store cannot fail");
    let tip = check_tip(
        &node,
        &tree,
        &complete_at,
        &excluded,
        settled,
        true,
        &changed,
    )
    .map_err(|e| TestCaseError::fail(format!("invalidate {bad}: {e}")))?;
    prop_assert!(!excluded[tip]);
    assert_utxo_matches_replay(&node, now);

    // reconsiderblock restores the tip the deliveries settled on, even where another block of
    // equal work completed in the same delivery: the first of them to be sequenced wins
    // again, so the tip after invalidation is not sticky here.
    let changed = node
        .reconsider_block(&tree.hash[bad])
        .expect("memory store cannot fail");
    check_tip(
        &node,
        &tree,
        &complete_at,
        &vec![false; n],
        tip,
        false,
        &changed,
    )
    .map_err(|e| TestCaseError::fail(format!("reconsider {bad}: {e}")))?;
    prop_assert_eq!(node.tip().hash, tree.hash[settled]);
    assert_utxo_matches_replay(&node, now);

    // Reopening the store (a restart) resumes at the same tip and UTXO set.
    let stats = node.utxo_stats().expect("memory store cannot fail");
    let reopened = Node::open(params.clone(), node.into_store()).expect("reopen");
    prop_assert_eq!(reopened.tip().hash, tree.hash[settled]);
    prop_assert_eq!(
        reopened.utxo_stats().expect("memory store cannot fail"),
        stats
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn tip_is_the_models_best_tip_for_any_tree_arrival_order_and_invalidation(scenario in scenario()) {
        run(&scenario)?;
    }
}
