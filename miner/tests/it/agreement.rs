//! All kernels find the same first solution as a brute force over cairn-core's own hashing.

use cairn_core::pow::CompactTarget;
use cairn_core::{BlockHash, BlockHeader, MerkleRoot, Target};
use cairn_miner::{CancelToken, Kernel};
use proptest::prelude::*;

fn header(version: u32, prev: [u8; 32], root: [u8; 32], time: u32, bits: u32) -> BlockHeader {
    BlockHeader {
        version,
        prev_blockhash: BlockHash::from_byte_array(prev),
        merkle_root: MerkleRoot::from_byte_array(root),
        time,
        bits: CompactTarget(bits),
        nonce: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn kernels_agree_with_cairn_core_on_random_headers(
        version in any::<u32>(),
        prev in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
        time in any::<u32>(),
        // About one hash in 2^6, 2^10 or 2^16 meets these targets.
        bits in prop::sample::select(vec![0x2003_ffffu32, 0x1f3f_ffff, 0x1f00_ffff]),
        start in any::<u32>(),
    ) {
        let template = header(version, prev, root, time, bits);
        let target = Target::from_compact(template.bits).unwrap();
        let start = start.min(u32::MAX - 1_500);
        let nonces = start..=start + 1_500;
        let expected = nonces.clone().find_map(|nonce| {
            let hash = BlockHeader { nonce, ..template }.block_hash();
            target.is_met_by(&hash).then_some((nonce, hash))
        });
        for kernel in Kernel::available() {
            // One thread takes the units in order, so it reports the lowest solution.
            let found = super::miner(kernel, 1).search_header(&template, &target, nonces.clone(), &CancelToken::new());
            prop_assert_eq!(found, Ok(expected), "{}", kernel);
        }
    }
}

#[test]
fn the_top_of_the_nonce_space_is_searched() {
    let template = header(2, [1; 32], [2; 32], 3, 0x207f_ffff);
    let target = Target::from_compact(template.bits).unwrap();
    for kernel in Kernel::available() {
        let miner = super::miner(kernel, 2);
        let found = miner
            .search_header(&template, &target, u32::MAX..=u32::MAX, &CancelToken::new())
            .unwrap();
        let expected_hash = BlockHeader {
            nonce: u32::MAX,
            ..template
        }
        .block_hash();
        let expected = target
            .is_met_by(&expected_hash)
            .then_some((u32::MAX, expected_hash));
        assert_eq!(found, expected, "{kernel}");
    }
}
