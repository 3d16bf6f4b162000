//! Context-free rules: each test builds a valid block, breaks exactly one rule, re-mines it
//! (fixing the merkle root unless the merkle rule is the one under test) and checks the
//! error variant and its reject reason.

use crate::support::*;
use cairn_core::amount::COIN;
use cairn_core::pow::PowError;
use cairn_core::validation::{check_block, check_transaction};
use cairn_core::{Amount, BlockError, CompactTarget, ImportOutcome, TxError, TxOut};

const FEE: u64 = 10_000;

/// Spends genesis coin 1 (dev account 1) into one output, paying `FEE`.
fn simple_spend(kit: &cairn_core::testkit::TestChain) -> cairn_core::Transaction {
    let coin = kit.genesis_coin(1);
    pay(kit, &coin, 1, &[coin.1.output.amount.to_base() - FEE])
}

#[test]
fn block_over_the_size_limit_is_rejected_and_one_exactly_at_the_limit_is_accepted() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let max = params.max_block_size;
    let tip = kit.chain.tip().hash;
    let base = template(&mut kit, &tip, vec![], Amount::ZERO);
    let subsidy = params.subsidy(1).to_base();
    let address = base.txs[0].outputs[0].address;
    // Fill the block with coinbase outputs (28 bytes each) and data (1 byte each).
    let sized = |outputs: usize, data: usize| {
        let mut block = base.clone();
        block.txs[0].outputs = vec![
            TxOut {
                amount: Amount::from_base(subsidy / outputs as u64),
                address,
            };
            outputs
        ];
        block.txs[0].data = vec![7; data];
        block
    };
    let empty_size = sized(1, 0).encoded_size();
    let outputs = 1 + (max - empty_size) / 28;
    let data = (max - empty_size) % 28;
    let at_limit = reseal(sized(outputs, data), &params);
    assert_eq!(at_limit.encoded_size(), max);
    let over = reseal(sized(outputs, data + 1), &params);
    assert_eq!(over.encoded_size(), max + 1);

    let now = kit.now();
    let error = rejection(&mut kit.chain, &over, now);
    assert_eq!(error, BlockError::TooLarge { size: max + 1, max });
    assert_eq!(error.reject_reason(), "bad-blk-length");
    accept_active(&mut kit.chain, &at_limit, now);
}

#[test]
fn oversized_body_under_a_known_header_is_rejected_before_hashing_without_poisoning_it() {
    // Byzantine finding 9: the size used to be checked after every transaction was hashed
    // for the merkle root. Checked first, its rejection comes before the body is matched to
    // the header, so it must not mark the header invalid (like a merkle mismatch).
    let mut kit = regtest();
    let params = kit.params().clone();
    let tx = simple_spend(&kit);
    let good = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let now = kit.now();
    let mut node = fresh_node(&params);
    node.accept_header(&good.header, now).expect("memory store");
    let mut padded = good.clone();
    while padded.encoded_size() <= params.max_block_size {
        padded.txs.push(good.txs[1].clone());
    }
    let size = padded.encoded_size();
    let error = rejection(&mut node, &padded, now);
    assert_eq!(
        error,
        BlockError::TooLarge {
            size,
            max: params.max_block_size
        }
    );
    assert_eq!(error.reject_reason(), "bad-blk-length");
    assert!(!error.is_permanent() && error.is_misbehavior());
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
fn block_without_transactions_is_rejected() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    block.txs.clear();
    let block = reseal(block, &params);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::NoTransactions);
    assert_eq!(error.reject_reason(), "bad-blk-length");
}

#[test]
fn header_hash_above_its_target_is_rejected_as_high_hash_without_poisoning_the_block() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let good = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    let mut bad = good.clone();
    loop {
        bad.header.nonce = bad.header.nonce.wrapping_add(1);
        if cairn_core::validation::check_proof_of_work(&bad.block_hash(), bad.header.bits, &params)
            .is_err()
        {
            break;
        }
    }
    let now = kit.now();
    let error = rejection(&mut kit.chain, &bad, now);
    assert_eq!(error, BlockError::HighHash(bad.block_hash()));
    assert_eq!(error.reject_reason(), "high-hash");
    assert!(!error.is_permanent());
    accept_active(&mut kit.chain, &good, now);
}

fn with_bits(bits: u32) -> (cairn_core::testkit::TestChain, cairn_core::Block) {
    let mut kit = regtest();
    let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    block.header.bits = CompactTarget(bits);
    (kit, block)
}

#[test]
fn negative_compact_bits_are_rejected() {
    let (mut kit, block) = with_bits(0x0492_3456);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::BadBits(PowError::Negative(0x0492_3456)));
    assert_eq!(error.reject_reason(), "bad-diffbits");
}

#[test]
fn overflowing_compact_bits_are_rejected() {
    let (mut kit, block) = with_bits(0xff12_3456);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::BadBits(PowError::Overflow(0xff12_3456)));
    assert_eq!(error.reject_reason(), "bad-diffbits");
}

#[test]
fn zero_compact_target_is_rejected() {
    let (mut kit, block) = with_bits(0x0100_3456);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::BadBits(PowError::Zero(0x0100_3456)));
    assert_eq!(error.reject_reason(), "bad-diffbits");
}

#[test]
fn target_easier_than_the_pow_limit_is_rejected() {
    // 0xffff << 240: a well-formed target, but above regtest's 0x7fffff << 232.
    let (mut kit, block) = with_bits(0x2100_ffff);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::TargetAboveLimit);
    assert_eq!(error.reject_reason(), "bad-diffbits");
}

#[test]
fn transactions_not_matching_the_merkle_root_are_rejected_without_poisoning_the_block() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let good = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    let mut bad = good.clone();
    bad.txs[0].data.push(0xaa);
    let bad = remine(bad, &params);
    let now = kit.now();
    let error = rejection(&mut kit.chain, &bad, now);
    assert_eq!(
        error,
        BlockError::BadMerkleRoot {
            header: good.header.merkle_root,
            computed: bad.compute_merkle_root(),
        }
    );
    assert_eq!(error.reject_reason(), "bad-txnmrklroot");
    accept_active(&mut kit.chain, &good, now);
}

/// CVE-2012-2459: in Bitcoin `[cb, a, b]` and `[cb, a, b, b]` share a merkle root, so the
/// mutated block has the *same hash* and a node that marked that hash invalid could be
/// split from the chain. Cairn's tree promotes an odd node instead of pairing it with
/// itself, so the duplicate changes the root.
#[test]
fn duplicating_the_last_transaction_changes_the_merkle_root_cve_2012_2459() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let (c1, c2) = (kit.genesis_coin(1), kit.genesis_coin(2));
    let t1 = pay(&kit, &c1, 1, &[c1.1.output.amount.to_base() - FEE]);
    let t2 = pay(&kit, &c2, 2, &[c2.1.output.amount.to_base() - FEE]);
    let good = unaccepted_block(&mut kit, vec![t1, t2.clone()], Amount::from_base(2 * FEE));
    assert_eq!(good.txs.len(), 3, "an odd number of leaves");
    let mut mutated = good.clone();
    mutated.txs.push(t2.clone());
    assert_eq!(mutated.block_hash(), good.block_hash(), "same header");
    assert_ne!(mutated.compute_merkle_root(), good.header.merkle_root);

    let now = kit.now();
    let error = rejection(&mut kit.chain, &mutated, now);
    assert!(
        matches!(error, BlockError::BadMerkleRoot { .. }),
        "{error:?}"
    );
    assert!(
        kit.chain.entry(&good.block_hash()).is_none(),
        "the hash must not be recorded, let alone marked invalid"
    );
    accept_active(&mut kit.chain, &good, now);

    // Committing to the duplicate list honestly is caught by the duplicate rule.
    let parent = good.header.prev_blockhash;
    let mut honest = template(&mut kit, &parent, vec![], Amount::ZERO);
    honest.txs.extend(mutated.txs[1..].iter().cloned());
    let honest = reseal(honest, &params);
    let error = reject_in(&mut kit, &honest);
    assert_eq!(error, BlockError::DuplicateTx(t2.txid()));
    assert_eq!(error.reject_reason(), "bad-txns-duplicate");
}

#[test]
fn block_whose_first_transaction_is_not_a_coinbase_is_rejected() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let tx = simple_spend(&kit);
    let mut block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    block.txs.swap(0, 1);
    let block = reseal(block, &params);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::FirstNotCoinbase);
    assert_eq!(error.reject_reason(), "bad-cb-missing");
}

#[test]
fn block_with_a_second_coinbase_is_rejected() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
    let mut second = block.txs[0].clone();
    second.data = b"another coinbase".to_vec();
    block.txs.push(second);
    let block = reseal(block, &params);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::MultipleCoinbase(1));
    assert_eq!(error.reject_reason(), "bad-cb-multiple");
}

/// CVE-2018-17144: Bitcoin Core 0.14–0.16 skipped the duplicate-input check for blocks and
/// could be crashed, or made to inflate the supply, by a transaction spending one coin twice.
#[test]
fn transaction_spending_the_same_outpoint_twice_is_rejected_cve_2018_17144() {
    let mut kit = regtest();
    let params = kit.params().clone();
    let coin = kit.genesis_coin(1);
    let double = 2 * coin.1.output.amount.to_base() - FEE;
    let tx = kit.spend(
        &[coin, coin],
        &kit.key(1),
        vec![TxOut {
            amount: Amount::from_base(double),
            address: kit.key(1).pubkey_hash(),
        }],
    );
    assert_eq!(
        check_transaction(&tx, &params),
        Err(TxError::DuplicateInput(coin.0))
    );
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-inputs-duplicate");
    assert_eq!(tx_rule(error, 1), TxError::DuplicateInput(coin.0));
}

#[test]
fn two_transactions_spending_the_same_outpoint_in_one_block_are_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let amount = coin.1.output.amount.to_base();
    let first = pay(&kit, &coin, 1, &[amount - FEE]);
    let second = pay(&kit, &coin, 1, &[amount - 2 * FEE]);
    let block = unaccepted_block(&mut kit, vec![first, second], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error, BlockError::DuplicateSpend(coin.0));
    assert_eq!(error.reject_reason(), "bad-txns-inputs-duplicate");
}

#[test]
fn zero_value_output_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let tx = pay(&kit, &coin, 1, &[coin.1.output.amount.to_base() - FEE, 0]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-vout-zero");
    assert_eq!(tx_rule(error, 1), TxError::ZeroOutput(1));
}

#[test]
fn output_above_max_money_is_rejected() {
    let mut kit = regtest();
    let max = kit.params().max_money.to_base();
    let coin = kit.genesis_coin(1);
    let tx = pay(&kit, &coin, 1, &[max + 1]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::ZERO);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-vout-toolarge");
    assert_eq!(
        tx_rule(error, 1),
        TxError::OutputTooLarge {
            index: 0,
            amount: Amount::from_base(max + 1)
        }
    );
}

#[test]
fn outputs_summing_above_max_money_are_rejected() {
    let mut kit = regtest();
    let max = kit.params().max_money.to_base();
    let coin = kit.genesis_coin(1);
    let tx = pay(&kit, &coin, 1, &[max / 2 + 1, max / 2 + 1]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::ZERO);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-txouttotal-toolarge");
    assert_eq!(tx_rule(error, 1), TxError::OutputTotalTooLarge);
}

/// CVE-2010-5139: two outputs whose sum wrapped around `u64` let block 74638 create 184
/// billion BTC. On a network whose supply is above `u64::MAX / 2` each output can be within
/// the supply while their sum overflows; it must be an error, not a small wrapped total.
#[test]
fn outputs_overflowing_u64_are_rejected_not_wrapped_cve_2010_5139() {
    let params = regtest_with(|c| {
        c.initial_subsidy = 1 << 61;
        c.halving_interval = 3;
    });
    let max = params.max_money.to_base();
    assert!(
        max > u64::MAX / 2,
        "precondition: outputs within supply can overflow"
    );
    let mut kit = cairn_core::testkit::TestChain::new(params.clone());
    let coin = kit.genesis_coin(1);
    let wrapped_to = 1_000u64;
    let second = u64::MAX - max + 1 + wrapped_to;
    assert!(second <= max);
    assert_eq!(
        max.wrapping_add(second),
        wrapped_to,
        "a wrapping sum looks tiny"
    );
    let tx = pay(&kit, &coin, 1, &[max, second]);
    assert_eq!(
        check_transaction(&tx, &params),
        Err(TxError::OutputTotalTooLarge)
    );
    let block = unaccepted_block(&mut kit, vec![tx], Amount::ZERO);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-txouttotal-toolarge");
    assert_eq!(tx_rule(error, 1), TxError::OutputTotalTooLarge);
}

#[test]
fn transaction_without_outputs_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let tx = pay(&kit, &coin, 1, &[]);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::ZERO);
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "bad-txns-vout-empty");
    assert_eq!(tx_rule(error, 1), TxError::NoOutputs);
}

#[test]
fn data_longer_than_100_bytes_is_rejected_and_100_bytes_are_accepted() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let with_data = |kit: &cairn_core::testkit::TestChain, len: usize| {
        let mut tx = simple_spend(kit);
        tx.data = vec![0x42; len];
        resign(kit, &mut tx, &[&coin], 1);
        tx
    };
    let long = with_data(&kit, 101);
    let block = unaccepted_block(&mut kit, vec![long], Amount::from_base(FEE));
    let now = kit.now();
    let error = rejection(&mut kit.chain, &block, now);
    assert_eq!(error.reject_reason(), "bad-txns-data-toolong");
    assert_eq!(tx_rule(error, 1), TxError::DataTooLong(101));

    let limit = with_data(&kit, 100);
    let block = unaccepted_block(&mut kit, vec![limit], Amount::from_base(FEE));
    activate_in(&mut kit, &block);
}

#[test]
fn unknown_transaction_version_is_rejected() {
    let mut kit = regtest();
    let coin = kit.genesis_coin(1);
    let mut tx = simple_spend(&kit);
    tx.version = 2;
    resign(&kit, &mut tx, &[&coin], 1);
    let block = unaccepted_block(&mut kit, vec![tx], Amount::from_base(FEE));
    let error = reject_in(&mut kit, &block);
    assert_eq!(error.reject_reason(), "version");
    assert_eq!(tx_rule(error, 1), TxError::Version(2));
}

#[test]
fn transaction_larger_than_a_block_is_rejected_on_its_own() {
    let kit = regtest();
    let params = kit.params();
    let coin = kit.genesis_coin(1);
    let outputs = params.max_block_size / 28 + 1;
    let tx = pay(&kit, &coin, 1, &vec![COIN; outputs]);
    let size = tx.encoded_size();
    assert_eq!(
        check_transaction(&tx, params),
        Err(TxError::TooLarge {
            size,
            max: params.max_block_size
        })
    );
    assert_eq!(
        TxError::TooLarge { size, max: 0 }.reject_reason(),
        "bad-txns-oversize"
    );
}

#[test]
fn every_unmutated_block_of_these_tests_is_valid() {
    // The baseline the mutations start from passes every context-free rule and connects.
    let mut kit = regtest();
    let params = kit.params().clone();
    let (c1, c2) = (kit.genesis_coin(1), kit.genesis_coin(2));
    let t1 = pay(&kit, &c1, 1, &[c1.1.output.amount.to_base() - FEE]);
    let t2 = pay(&kit, &c2, 2, &[c2.1.output.amount.to_base() - FEE]);
    let block = unaccepted_block(&mut kit, vec![t1, t2], Amount::from_base(2 * FEE));
    assert!(check_block(block.clone(), &params).is_ok());
    let report = {
        let now = kit.now();
        accept(&mut kit.chain, &block, now)
    };
    assert_eq!(report.outcome, ImportOutcome::Active);
}

/// A broken transaction placed into a wide block, and how it is broken.
#[derive(Debug, Clone, Copy)]
enum Flaw {
    Version,
    ZeroOutput,
    SecondCoinbase,
    /// A copy of the transaction just before it.
    DuplicateTx,
    /// Spends what the transaction just before it spends.
    DuplicateSpend,
}

/// The context-free verdict as the rules read, one transaction after another: what the
/// parallel per-transaction checks in `check_block` must still report.
fn sequential_verdict(
    block: &cairn_core::Block,
    params: &cairn_core::ChainParams,
) -> Option<BlockError> {
    use std::collections::HashSet;
    let (mut txids, mut spent) = (HashSet::new(), HashSet::new());
    for (index, tx) in block.txs.iter().enumerate() {
        let txid = tx.txid();
        if index > 0 && tx.is_coinbase() {
            return Some(BlockError::MultipleCoinbase(index));
        }
        if !txids.insert(txid) {
            return Some(BlockError::DuplicateTx(txid));
        }
        if let Err(error) = check_transaction(tx, params) {
            return Some(BlockError::Tx { index, txid, error });
        }
        for input in &tx.inputs {
            if !spent.insert(input.prevout) {
                return Some(BlockError::DuplicateSpend(input.prevout));
            }
        }
    }
    None
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]

    /// Blocks wide enough that every core checks a share of the transactions: whichever
    /// transactions are broken, and however, the error is the first in block order.
    #[test]
    fn a_wide_blocks_first_broken_transaction_is_the_one_reported(
        txs in 64usize..160,
        flaws in proptest::collection::vec(
            (1usize..160, proptest::sample::select(vec![
                Flaw::Version, Flaw::ZeroOutput, Flaw::SecondCoinbase,
                Flaw::DuplicateTx, Flaw::DuplicateSpend,
            ])),
            0..4,
        ),
    ) {
        let mut kit = regtest();
        let params = kit.params().clone();
        let mut block = unaccepted_block(&mut kit, vec![], Amount::ZERO);
        let address = kit.key(1).pubkey_hash();
        // Signatures are a contextual rule: these spends of made-up coins pass every
        // context-free one until a flaw is put in.
        for i in 1..txs {
            block.txs.push(cairn_core::Transaction {
                version: 1,
                inputs: vec![cairn_core::TxIn {
                    prevout: cairn_core::OutPoint {
                        txid: cairn_core::Txid(cairn_core::hash::sha256d(&i.to_le_bytes())),
                        vout: 0,
                    },
                    signature: [1; 64],
                    public_key: [2; 33],
                }],
                outputs: vec![TxOut { amount: Amount::from_base(1000), address }],
                lock_height: 0,
                data: vec![],
            });
        }
        for (at, flaw) in flaws {
            let at = 1 + at % (txs - 1);
            let before = block.txs[at - 1].clone();
            let tx = &mut block.txs[at];
            match flaw {
                Flaw::Version => tx.version = 2,
                Flaw::ZeroOutput => tx.outputs[0].amount = Amount::ZERO,
                Flaw::SecondCoinbase => tx.inputs.clear(),
                Flaw::DuplicateTx => *tx = before,
                Flaw::DuplicateSpend => match before.inputs.first() {
                    Some(input) => tx.inputs[0].prevout = input.prevout,
                    None => tx.version = 2,
                },
            }
        }
        let block = reseal(block, &params);
        let expected = sequential_verdict(&block, &params);
        let got = check_block(block, &params).err();
        proptest::prop_assert_eq!(got, expected);
    }
}
