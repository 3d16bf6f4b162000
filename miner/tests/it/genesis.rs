//! Bitcoin's genesis header as a known-answer test for every kernel.

use cairn_core::pow::CompactTarget;
use cairn_core::{BlockHash, BlockHeader, Hash256, MerkleRoot, Target};
use cairn_miner::{CancelToken, Kernel};

const GENESIS_NONCE: u32 = 2_083_236_893;
const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

fn bitcoin_genesis_header(nonce: u32) -> BlockHeader {
    BlockHeader {
        version: 1,
        prev_blockhash: BlockHash::ZERO,
        merkle_root: MerkleRoot(
            Hash256::from_display_hex(
                "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
            )
            .unwrap(),
        ),
        time: 1_231_006_505,
        bits: CompactTarget(0x1d00_ffff),
        nonce,
    }
}

#[test]
fn every_kernel_mines_bitcoins_genesis_header() {
    let template = bitcoin_genesis_header(0);
    let target = Target::from_compact(template.bits).unwrap();
    let nonces = GENESIS_NONCE - 51_234..=GENESIS_NONCE + 48_766;
    for kernel in Kernel::available() {
        for threads in [1, 2] {
            let miner = super::miner(kernel, threads);
            let found = miner
                .search_header(&template, &target, nonces.clone(), &CancelToken::new())
                .unwrap();
            let (nonce, hash) =
                found.unwrap_or_else(|| panic!("{kernel} on {threads} threads missed the nonce"));
            assert_eq!(nonce, GENESIS_NONCE, "{kernel}");
            assert_eq!(hash.to_string(), GENESIS_HASH, "{kernel}");
            assert_eq!(
                hash,
                bitcoin_genesis_header(nonce).block_hash(),
                "{kernel}: cairn-core disagrees"
            );
            assert!(target.is_met_by(&hash));
            assert_eq!(miner.active_workers(), 0);
        }
    }
}

#[test]
fn a_range_without_the_nonce_finds_nothing() {
    let template = bitcoin_genesis_header(0);
    let target = Target::from_compact(template.bits).unwrap();
    for kernel in Kernel::available() {
        let miner = super::miner(kernel, 2);
        let below = GENESIS_NONCE - 20_000..=GENESIS_NONCE - 1;
        assert_eq!(
            miner.search_header(&template, &target, below, &CancelToken::new()),
            Ok(None),
            "{kernel}"
        );
        assert_eq!(miner.hashes_done(), 20_000, "{kernel}");
    }
}
