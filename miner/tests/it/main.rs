//! Integration tests of cairn-miner through its public API, against cairn-core's hashing,
//! merkle roots and block validation.

mod agreement;
mod cancellation;
mod extranonce_roll;
mod genesis;
mod throttle;

use cairn_core::testkit::TestChain;
use cairn_core::{Amount, Block, ChainParams};
use cairn_miner::{Kernel, Miner, MinerConfig};

/// A miner on `threads` threads with `kernel`.
pub fn miner(kernel: Kernel, threads: usize) -> Miner {
    Miner::new(MinerConfig {
        threads,
        kernel: Some(kernel),
        throttle: None,
    })
    .expect("kernel is available")
}

/// A regtest chain and a template on its tip whose coinbase carries `extra_data`.
pub fn regtest_template(extra_data: Vec<u8>) -> (TestChain, Block) {
    let chain = TestChain::new(ChainParams::regtest());
    let pay_to = chain.key(0).pubkey_hash();
    let now = chain.now();
    let template = chain
        .chain
        .block_template(pay_to, vec![], Amount::ZERO, now, extra_data);
    (chain, template)
}
