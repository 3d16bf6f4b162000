//! Rolling the extranonce when a nonce range is exhausted, and the mined block validating.

use cairn_core::pow::CompactTarget;
use cairn_core::{BlockHeader, ImportOutcome, Target};
use cairn_miner::{CancelToken, EXTRANONCE_LEN, Kernel, with_extranonce};

/// Nonces swept per extranonce: short, so that the roll happens.
const NONCES: std::ops::RangeInclusive<u32> = 0..=255;

#[test]
fn exhausting_the_nonce_range_rolls_the_extranonce_and_the_block_validates() {
    // About one hash in 2^10 meets it: extranonce 0 usually has no solution in 256 nonces.
    let target = Target::from_compact(CompactTarget(0x1f3f_ffff)).unwrap();
    // Pick coinbase data for which extranonce 0 certainly has none, so a roll must happen.
    let (mut chain, template) = (0u8..=255)
        .map(|tag| super::regtest_template(vec![tag]))
        .find(|(_, template)| {
            let first = with_extranonce(template, 0).unwrap().header;
            NONCES
                .clone()
                .all(|nonce| !target.is_met_by(&BlockHeader { nonce, ..first }.block_hash()))
        })
        .expect("some tag leaves extranonce 0 without a solution");
    let unrolled_root = with_extranonce(&template, 0).unwrap().header.merkle_root;

    for kernel in [Kernel::best(), Kernel::Portable] {
        let miner = super::miner(kernel, 2);
        let block = miner
            .search_in(&template, &target, NONCES, &CancelToken::new())
            .unwrap()
            .expect("a block");
        let data = &block.txs[0].data;
        let extranonce =
            u64::from_le_bytes(data[data.len() - EXTRANONCE_LEN..].try_into().unwrap());
        assert!(
            extranonce >= 1,
            "{kernel}: extranonce 0 has no solution, yet {extranonce} was reported"
        );
        assert_eq!(
            data[..data.len() - EXTRANONCE_LEN],
            template.txs[0].data[..]
        );
        assert_eq!(
            block.header.merkle_root,
            block.compute_merkle_root(),
            "{kernel}"
        );
        assert_ne!(block.header.merkle_root, unrolled_root, "{kernel}");
        assert!(NONCES.contains(&block.header.nonce));
        assert!(target.is_met_by(&block.block_hash()), "{kernel}");
        assert_eq!(miner.active_workers(), 0);

        if kernel == Kernel::best() {
            let now = chain.now();
            let report = chain.chain.accept_block(block.clone(), now).unwrap();
            assert_eq!(
                report.outcome,
                ImportOutcome::Active,
                "{kernel}: the mined block must connect"
            );
        }
    }
}

#[test]
fn a_mined_regtest_template_connects() {
    let (mut chain, template) = super::regtest_template(b"cairn".to_vec());
    let target = Target::from_compact(template.header.bits).unwrap();
    let block = super::miner(Kernel::best(), 2)
        .search(&template, &target, &cairn_miner::CancelToken::new())
        .unwrap()
        .unwrap();
    assert_eq!(block.txs[0].data[..5], *b"cairn");
    let now = chain.now();
    assert_eq!(
        chain.chain.accept_block(block, now).unwrap().outcome,
        ImportOutcome::Active
    );
}
