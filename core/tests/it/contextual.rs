//! Rules that need the chain: the parent, difficulty, timestamps, the coins spent, and what
//! the node remembers about invalid blocks.

use crate::support::*;
use cairn_core::chain::{HeaderOutcome, Validity};
use cairn_core::hash::sha256d;
use cairn_core::keys::SignatureError;
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{
    Amount, BlockError, ChainParams, Coin, CompactTarget, ImportOutcome, OutPoint, TxError, TxOut,
    Txid,
};

const FEE: u64 = 10_000;

fn spend_genesis_coin(kit: &TestChain, account: u32) -> cairn_core::Transaction {
    let coin = kit.genesis_coin(account);
    pay(kit, &coin, account, &[coin.1.output.amount.to_base() - FEE])
}

fn assert_marked_invalid(node: &Node, hash: &cairn_core::BlockHash, reason: &str) {
    match &node
        .entry(hash)
        .expect("invalid block is remembered")
        .validity
    {
        Validity::Invalid { reason: why } => assert!(why.starts_with(reason), "{why}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn block_with_unknown_parent_is_held_as_orphan_and_connects_when_the_parent_arrives() {
    let mut kit = regtest();
    let blocks = kit.build_chain(3);
    let now = kit.now();
    let mut node = fresh_node(kit.params());
    accept_active(&mut node, &blocks[0], now);

    let report = accept(&mut node, &blocks[2], now);
    assert_eq!(report.outcome, ImportOutcome::Orphan);
    assert_eq!(report.tip_changed, None);
    assert_eq!(node.orphan_count(), 1);
    assert_eq!(
        node.orphan_root(&blocks[2].block_hash()),
        Some(blocks[1].block_hash()),
        "sync should ask for the missing parent"
    );
    assert_eq!(
        accept(&mut node, &blocks[2], now).outcome,
        ImportOutcome::AlreadyHave
    );

    let report = accept(&mut node, &blocks[1], now);
    assert_eq!(report.outcome, ImportOutcome::Active);
    assert_eq!(node.tip().hash, blocks[2].block_hash());
    let changed = report.tip_changed.expect("the tip moved");
    assert_eq!(changed.connected_hashes(), hashes(&blocks[1..]));
    assert!(changed.reverted.is_empty());
    assert_eq!(node.orphan_count(), 0);
}

#[test]
fn bits_other_than_the_required_difficulty_are_rejected() {
    let mut kit = regtest();
    kit.build_chain(1);
    let params = kit.params().clone();
    let required = params.initial_bits.0;
    let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    // A valid target within the limit, just not the one the chain requires.
    block.header.bits = CompactTarget(required - 1);
    let block = remine(block, &params);
    let error = reject_in(&mut kit, &block);
    assert_eq!(
        error,
        BlockError::WrongBits {
            expected: required,
            got: required - 1
        }
    );
    assert_eq!(error.reject_reason(), "bad-diffbits");
}

#[test]
fn time_not_after_the_median_of_the_last_eleven_blocks_is_rejected() {
    let mut kit = regtest();
    let blocks = kit.build_chain(12);
    let params = kit.params().clone();
    let tip = kit.chain.tip().hash;
    let mut last_eleven: Vec<u32> = blocks[1..].iter().map(|b| b.header.time).collect();
    last_eleven.sort_unstable();
    let median = last_eleven[5];
    assert_eq!(kit.chain.median_time_past(&tip), median);
    assert!(
        median < blocks[11].header.time,
        "the rule is not 'after the parent'"
    );

    let mut block = template(&mut kit, &tip, vec![], Amount::ZERO);
    block.header.time = median;
    let at_median = remine(block.clone(), &params);
    let error = reject_in(&mut kit, &at_median);
    assert_eq!(
        error,
        BlockError::TimeTooOld {
            time: median,
            median
        }
    );
    assert_eq!(error.reject_reason(), "time-too-old");

    block.header.time = median + 1;
    activate_in(&mut kit, &remine(block, &params));
}

#[test]
fn time_more_than_two_hours_ahead_is_rejected_but_not_marked_invalid() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let now = kit.now();
    let max = now + u64::from(params.max_future_block_time_secs);
    assert_eq!(params.max_future_block_time_secs, 2 * 60 * 60);
    let tip = kit.chain.tip().hash;
    let base = template(&mut kit, &tip, vec![], Amount::ZERO);
    let at = |time: u64| {
        let mut b = base.clone();
        b.header.time = time as u32;
        remine(b, &params)
    };
    let too_new = at(max + 1);
    let error = rejection(&mut kit.chain, &too_new, now);
    assert_eq!(
        error,
        BlockError::TimeTooNew {
            time: (max + 1) as u32,
            max
        }
    );
    assert_eq!(error.reject_reason(), "time-too-new");
    assert!(!error.is_permanent() && !error.is_misbehavior());
    assert!(kit.chain.entry(&too_new.block_hash()).is_none());

    accept_active(&mut kit.chain, &at(max), now);
    // A second later on the node's clock the same block is fine (a valid competitor).
    let report = accept(&mut kit.chain, &too_new, now + 1);
    assert_eq!(report.outcome, ImportOutcome::SideChain);
    assert!(
        !kit.chain
            .entry(&too_new.block_hash())
            .expect("stored")
            .validity
            .is_invalid()
    );
}

/// A network whose difficulty adjusts every 6 blocks, at regtest's easy limit, with the
/// largest time bounds its 25-second window allows.
fn retargeting_params() -> ChainParams {
    regtest_with(|c| {
        c.difficulty_adjustment = true;
        c.retarget_window = 6;
        c.timewarp_grace_secs = 6;
        c.max_future_block_time_secs = 6;
    })
}

#[test]
fn block_at_a_retarget_boundary_keeping_the_old_difficulty_is_rejected() {
    let params = retargeting_params();
    let mut kit = TestChain::new(params.clone());
    // Five blocks one second apart instead of five: the next window must be harder.
    for _ in 0..5 {
        kit.clock -= u64::from(params.block_interval_secs) - 1;
        kit.build_chain(1);
    }
    let tip = kit.chain.tip().hash;
    let old_bits = kit.chain.tip().header.bits;
    let required = kit.chain.next_bits(&tip).expect("tip is indexed");
    let old_target = cairn_core::Target::from_compact(old_bits).expect("valid bits");
    let new_target = cairn_core::Target::from_compact(required).expect("valid bits");
    assert!(
        new_target < old_target,
        "a fast window raises the difficulty"
    );

    let mut block = template(&mut kit, &tip, vec![], Amount::ZERO);
    assert_eq!(block.header.bits, required);
    block.header.bits = old_bits;
    let error = reject_in(&mut kit, &remine(block.clone(), &params));
    assert_eq!(
        error,
        BlockError::WrongBits {
            expected: required.0,
            got: old_bits.0
        }
    );
    assert_eq!(error.reject_reason(), "bad-diffbits");
    block.header.bits = required;
    activate_in(&mut kit, &remine(block, &params));
}

/// BIP54: the first block of a window may not be more than `timewarp_grace_secs` before its
/// parent, or a majority could shift each window's start back and drive difficulty down.
#[test]
fn first_block_of_a_window_more_than_the_grace_before_its_parent_is_rejected_as_timewarp() {
    let params = retargeting_params();
    let grace = params.timewarp_grace_secs;
    let mut kit = TestChain::new(params.clone());
    kit.build_chain(4);
    // Height 5 closes the first window, far ahead of the others.
    kit.clock += u64::from(grace) + 3_000;
    let tip = kit.chain.tip().hash;
    let last_of_window = kit.block_on(&tip, vec![], Amount::ZERO);
    let parent_time = last_of_window.header.time;

    let mut block = template(&mut kit, &last_of_window.block_hash(), vec![], Amount::ZERO);
    assert_eq!(kit.chain.entry(&tip).expect("indexed").height + 2, 6);
    let min = parent_time - grace;
    assert!(min - 1 > kit.chain.median_time_past(&last_of_window.block_hash()));
    block.header.time = min - 1;
    let error = reject_in(&mut kit, &remine(block.clone(), &params));
    assert_eq!(error, BlockError::Timewarp { time: min - 1, min });
    assert_eq!(error.reject_reason(), "time-timewarp-attack");

    block.header.time = min;
    activate_in(&mut kit, &remine(block, &params));
}

/// BIP54: the last block of a window may not be earlier than the window's first block.
#[test]
fn last_block_of_a_window_before_the_windows_first_block_is_rejected_as_timewarp() {
    let params = retargeting_params();
    let mut kit = TestChain::new(params.clone());
    kit.build_chain(5);
    let resume = kit.clock;
    // Height 6 opens the second window, far ahead; heights 7..=10 go back to normal.
    kit.clock += 3_000;
    let tip = kit.chain.tip().hash;
    let first_of_window = kit.block_on(&tip, vec![], Amount::ZERO);
    kit.clock = resume;
    kit.build_on(&first_of_window.block_hash(), 4);
    let tip = kit.chain.tip().hash;
    assert_eq!(kit.chain.height(), 10);
    // The clock catches up with the window's first block, so the last one is not too new.
    kit.clock = u64::from(first_of_window.header.time);

    let mut block = template(&mut kit, &tip, vec![], Amount::ZERO);
    let min = first_of_window.header.time;
    assert!(min - 1 > kit.chain.median_time_past(&tip));
    block.header.time = min - 1;
    let error = reject_in(&mut kit, &remine(block.clone(), &params));
    assert_eq!(error, BlockError::Timewarp { time: min - 1, min });

    block.header.time = min;
    activate_in(&mut kit, &remine(block, &params));
}

#[test]
fn coinbase_not_committing_to_the_block_height_is_rejected_bip34() {
    let mut kit = regtest();
    kit.build_chain(2);
    let params = kit.params().clone();
    let old_tip = kit.chain.tip().hash;
    let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    block.txs[0].lock_height = 4;
    let block = reseal(block, &params);
    let error = reject_in(&mut kit, &block);
    assert_eq!(
        error,
        BlockError::BadCoinbaseHeight {
            expected: 3,
            got: 4
        }
    );
    assert_eq!(error.reject_reason(), "bad-cb-height");
    assert_eq!(kit.chain.tip().hash, old_tip);
    assert_marked_invalid(&kit.chain, &block.block_hash(), "bad-cb-height");
}

#[test]
fn coinbase_paying_more_than_subsidy_plus_fees_is_rejected() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let tx = spend_genesis_coin(&kit, 1);
    let subsidy = params.subsidy(1);
    let greedy = unaccepted_block(&mut kit, vec![tx.clone()], Amount::from_base(FEE + 1));
    let error = reject_in(&mut kit, &greedy);
    assert_eq!(
        error,
        BlockError::CoinbaseTooLarge {
            paid: Amount::from_base(subsidy.to_base() + FEE + 1),
            allowed: Amount::from_base(subsidy.to_base() + FEE),
        }
    );
    assert_eq!(error.reject_reason(), "bad-cb-amount");

    let exact = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    activate_in(&mut kit, &exact);
}

#[test]
fn coinbase_output_spent_before_maturity_is_rejected_and_accepted_at_maturity() {
    let mut kit = regtest();
    let maturity = kit.params().coinbase_maturity;
    assert!(maturity >= 2);
    let first = kit.build_chain(1).remove(0);
    let coinbase = coinbase_coin(&first, 1);
    kit.build_chain(maturity as usize - 2);
    let spend = pay(
        &kit,
        &coinbase,
        0,
        &[coinbase.1.output.amount.to_base() - FEE],
    );
    // Mined at height `maturity`: one confirmation short.
    let early = unaccepted_block(&mut kit, vec![spend.clone()], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &early);
    assert_eq!(
        error.reject_reason(),
        "bad-txns-premature-spend-of-coinbase"
    );
    assert_eq!(
        tx_rule(error, 1),
        TxError::PrematureCoinbaseSpend {
            outpoint: coinbase.0,
            coin_height: 1,
            confirmations: maturity - 1,
            maturity,
        }
    );

    kit.build_chain(1);
    let mature = unaccepted_block(&mut kit, vec![spend], Amount::from_base(FEE));
    activate_in(&mut kit, &mature);
    assert_eq!(kit.chain.coin(&coinbase.0).expect("memory store"), None);
}

#[test]
fn spending_an_output_that_never_existed_is_rejected() {
    let mut kit = regtest();
    let ghost = (
        OutPoint {
            txid: Txid(sha256d(b"no such transaction")),
            vout: 0,
        },
        Coin {
            output: TxOut {
                amount: Amount::from_base(1_000_000),
                address: kit.key(1).pubkey_hash(),
            },
            height: 0,
            is_coinbase: false,
        },
    );
    let tx = pay(&kit, &ghost, 1, &[1_000_000 - FEE]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(tx_rule(error, 1), TxError::MissingOrSpent(ghost.0));
}

#[test]
fn spending_an_output_already_spent_in_an_earlier_block_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let amount = coin.1.output.amount.to_base();
    let first = pay(&kit, &coin, 1, &[amount - FEE]);
    let tip = kit.chain.tip().hash;
    kit.block_on(&tip, vec![first], Amount::from_base(FEE));
    let again = pay(&kit, &coin, 1, &[amount - 2 * FEE]);
    let block = unaccepted_block(&mut kit, vec![again], Amount::from_base(2 * FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(tx_rule(error, 1), TxError::MissingOrSpent(coin.0));
}

#[test]
fn spending_an_output_of_a_later_transaction_in_the_same_block_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let parent = pay(&kit, &coin, 1, &[coin.1.output.amount.to_base() - FEE]);
    let created = coin_of(&parent, 0, 1, false);
    let child = pay(
        &kit,
        &created,
        1,
        &[created.1.output.amount.to_base() - FEE],
    );
    let fees = Amount::from_base(2 * FEE);

    let backwards = unaccepted_block(&mut kit, vec![child.clone(), parent.clone()], fees);
    let error = reject_in(&mut kit, &backwards);
    assert_eq!(error.reject_reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(tx_rule(error, 1), TxError::MissingOrSpent(created.0));

    let in_order = unaccepted_block(&mut kit, vec![parent, child], fees);
    activate_in(&mut kit, &in_order);
    assert_eq!(kit.chain.coin(&created.0).expect("memory store"), None);
}

#[test]
fn transaction_paying_out_more_than_its_inputs_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let amount = coin.1.output.amount;
    let tx = pay(&kit, &coin, 1, &[amount.to_base() + 1]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::ZERO);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-in-belowout");
    assert_eq!(
        tx_rule(error, 1),
        TxError::InputsBelowOutputs {
            inputs: amount,
            outputs: Amount::from_base(amount.to_base() + 1)
        }
    );
}

#[test]
fn transaction_locked_to_a_later_height_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let mut tx = spend_genesis_coin(&kit, 1);
    tx.lock_height = 2;
    resign(&kit, &mut tx, &[&coin], 1);
    let block = unaccepted_block(&mut kit, vec![tx.clone()], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-nonfinal");
    assert_eq!(
        tx_rule(error, 1),
        TxError::NonFinal {
            lock_height: 2,
            height: 1
        }
    );
    kit.build_chain(1);
    let at_lock_height = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    activate_in(&mut kit, &at_lock_height);
}

#[test]
fn input_signed_by_a_key_other_than_the_outputs_owner_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let tx = pay(&kit, &coin, 2, &[coin.1.output.amount.to_base() - FEE]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "mandatory-script-verify-flag-failed");
    assert_eq!(tx_rule(error, 1), TxError::WrongKey { index: 0 });
}

#[test]
fn corrupted_signature_is_rejected() {
    let mut kit = regtest();
    let mut tx = spend_genesis_coin(&kit, 1);
    tx.inputs[0].signature[63] ^= 0x01;
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "mandatory-script-verify-flag-failed");
    assert_eq!(
        tx_rule(error, 1),
        TxError::BadSignature {
            index: 0,
            error: SignatureError::Invalid
        }
    );
}

/// The high-S twin `(r, n - s)` of a valid signature verifies mathematically; accepting it
/// would let anyone change a transaction's wtxid (malleability), so only low S is valid.
#[test]
fn high_s_twin_of_a_valid_signature_is_rejected() {
    use k256::ecdsa::Signature;
    let mut kit = regtest();
    let mut tx = spend_genesis_coin(&kit, 1);
    let low = Signature::from_slice(&tx.inputs[0].signature).expect("valid signature");
    let high = Signature::from_scalars(low.r().to_bytes(), (-*low.s()).to_bytes())
        .expect("n - s is a valid scalar");
    tx.inputs[0].signature.copy_from_slice(&high.to_bytes());
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "mandatory-script-verify-flag-failed");
    assert_eq!(
        tx_rule(error, 1),
        TxError::BadSignature {
            index: 0,
            error: SignatureError::HighS
        }
    );
}

#[test]
fn signature_made_for_another_network_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let key = kit.key(1);
    let mut tx = spend_genesis_coin(&kit, 1);
    let devnet_magic = ChainParams::devnet().network_magic;
    assert_ne!(devnet_magic, kit.params().network_magic);
    tx.sign(&devnet_magic, &[(coin.1.output.amount, &key)]);
    let replayed = unaccepted_block(&mut kit, vec![tx.clone()], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &replayed);
    assert_eq!(error.reject_reason(), "mandatory-script-verify-flag-failed");
    assert_eq!(
        tx_rule(error, 1),
        TxError::BadSignature {
            index: 0,
            error: SignatureError::Invalid
        }
    );

    tx.sign(&kit.params().network_magic, &[(coin.1.output.amount, &key)]);
    let native = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    activate_in(&mut kit, &native);
}

/// A block at height 2 with a wrong BIP34 height: found invalid only when connected.
fn invalid_at_connection(kit: &mut TestChain) -> cairn_core::Block {
    let params = kit.params().clone();
    let mut block = unaccepted_block(kit, vec![], Amount::ZERO);
    block.txs[0].lock_height += 1;
    reseal(block, &params)
}

#[test]
fn descendants_of_an_invalid_block_are_rejected_and_resubmissions_are_known_invalid() {
    let mut kit = regtest();
    let first = kit.build_chain(1).remove(0);
    let bad = invalid_at_connection(&mut kit);
    // The builder learns the block is invalid, which lets it build a child on it.
    assert!(matches!(
        reject_in(&mut kit, &bad),
        BlockError::BadCoinbaseHeight { .. }
    ));
    let child = mine(
        template(&mut kit, &bad.block_hash(), vec![], Amount::ZERO),
        kit.params(),
    );
    let now = kit.now();

    // Parent first: the child names an invalid parent.
    let mut node = fresh_node(kit.params());
    accept_active(&mut node, &first, now);
    let error = rejection(&mut node, &bad, now);
    assert!(matches!(error, BlockError::BadCoinbaseHeight { .. }));
    let error = rejection(&mut node, &child, now);
    assert_eq!(error, BlockError::InvalidAncestor(bad.block_hash()));
    assert_eq!(error.reject_reason(), "bad-prevblk");
    let error = rejection(&mut node, &bad, now);
    assert_eq!(error, BlockError::KnownInvalid(bad.block_hash()));
    assert_eq!(error.reject_reason(), "duplicate-invalid");
    assert_eq!(node.tip().hash, first.block_hash());

    // Child first (an orphan): the parent's failure taints the released child too.
    let mut node = fresh_node(kit.params());
    accept_active(&mut node, &first, now);
    assert_eq!(
        accept(&mut node, &child, now).outcome,
        ImportOutcome::Orphan
    );
    let report = accept(&mut node, &bad, now);
    assert!(matches!(
        report.outcome,
        ImportOutcome::Invalid(BlockError::BadCoinbaseHeight { .. })
    ));
    assert_eq!(report.tip_changed, None);
    assert_eq!(node.tip().hash, first.block_hash());
    assert_marked_invalid(&node, &bad.block_hash(), "bad-cb-height");
    assert_eq!(
        node.entry(&child.block_hash())
            .expect("released from the orphan pool")
            .validity,
        Validity::InvalidAncestor(bad.block_hash())
    );
    assert_eq!(
        rejection(&mut node, &child, now),
        BlockError::KnownInvalid(child.block_hash())
    );
    assert_utxo_matches_replay(&node, now);
}

/// Offers `mutate(good body)` for a block whose header `node` already has, and checks that
/// the body is refused as not the one the header commits to, without marking the header:
/// the real body is then accepted.
fn mutated_body_does_not_poison_its_header(mutate: impl Fn(&mut cairn_core::Block)) {
    let mut kit = regtest();
    let tx = spend_genesis_coin(&kit, 1);
    let good = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let now = kit.now();
    let mut node = fresh_node(kit.params());
    assert_eq!(
        node.accept_header(&good.header, now).expect("memory store"),
        HeaderOutcome::New
    );
    let mut mutated = good.clone();
    mutate(&mut mutated);
    let error = rejection(&mut node, &mutated, now);
    assert!(
        matches!(error, BlockError::BadMerkleRoot { .. }),
        "{error:?}"
    );
    assert!(!error.is_permanent());
    assert!(
        !node
            .entry(&good.block_hash())
            .expect("header known")
            .validity
            .is_invalid()
    );
    accept_active(&mut node, &good, now);
}

#[test]
fn body_not_matching_a_known_header_does_not_mark_the_header_invalid() {
    mutated_body_does_not_poison_its_header(|block| block.txs.truncate(1));
}

#[test]
fn empty_body_under_a_known_header_does_not_poison_the_block() {
    // Byzantine finding 1: an empty body used to fail as NoTransactions, a permanent error,
    // before the merkle root was compared, so one peer answering a block request with the
    // real header and no transactions marked an honest block (and its descendants) invalid.
    mutated_body_does_not_poison_its_header(|block| block.txs.clear());
}

#[test]
fn body_committed_to_by_a_known_header_that_breaks_a_rule_marks_the_header_invalid() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let tx = spend_genesis_coin(&kit, 1);
    let mut bad = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    bad.txs.swap(0, 1);
    let bad = reseal(bad, &params);
    let now = kit.now();
    let mut node = fresh_node(&params);
    assert_eq!(
        node.accept_header(&bad.header, now).expect("memory store"),
        HeaderOutcome::New
    );
    assert_eq!(
        rejection(&mut node, &bad, now),
        BlockError::FirstNotCoinbase
    );
    assert_marked_invalid(&node, &bad.block_hash(), "bad-cb-missing");
    assert_eq!(
        rejection(&mut node, &bad, now),
        BlockError::KnownInvalid(bad.block_hash())
    );
    assert_eq!(
        node.accept_header(&bad.header, now).expect("memory store"),
        HeaderOutcome::Invalid(BlockError::KnownInvalid(bad.block_hash()))
    );
}
