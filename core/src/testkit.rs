//! Builders for valid chains, shared by this crate's tests, the node's store conformance
//! test and other crates' tests (feature `testkit`). Blocks are mined for real, at the
//! regtest difficulty.

use crate::amount::Amount;
use crate::block::Block;
use crate::chain::{ChainState, ImportOutcome};
use crate::hash::BlockHash;
use crate::keys::SecretKey;
use crate::params::{ChainParams, dev_secret_key};
use crate::store::{Coin, MemoryStore};
use crate::tx::{OutPoint, Transaction, TxIn, TxOut};
use crate::validation::check_proof_of_work;

/// Grinds the nonce until the header meets its own target.
pub fn mine(mut block: Block, params: &ChainParams) -> Block {
    while check_proof_of_work(&block.block_hash(), block.header.bits, params).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
        if block.header.nonce == 0 {
            block.header.time += 1;
        }
    }
    block
}

/// A signed transaction spending `coins` (outpoints with the amounts they hold, all owned by
/// `key`) to `outputs`, version 1, no lock height.
pub fn signed_spend(
    params: &ChainParams,
    coins: &[(OutPoint, Amount)],
    key: &SecretKey,
    outputs: Vec<TxOut>,
) -> Transaction {
    let mut tx = Transaction {
        version: crate::validation::TX_VERSION,
        inputs: coins
            .iter()
            .map(|(prevout, _)| TxIn {
                prevout: *prevout,
                signature: [0; 64],
                public_key: [0; 33],
            })
            .collect(),
        outputs,
        lock_height: 0,
        data: vec![],
    };
    let signers: Vec<(Amount, &SecretKey)> =
        coins.iter().map(|(_, amount)| (*amount, key)).collect();
    tx.sign(&params.network_magic, &signers);
    tx
}

/// A chain under construction with its own [`ChainState`], so every block it builds has the
/// right difficulty and timestamps, on any branch.
pub struct TestChain {
    /// The builder's own view of every block it built.
    pub chain: ChainState<MemoryStore>,
    /// Virtual clock (seconds).
    pub clock: u64,
    /// Counter making otherwise identical blocks differ.
    salt: u64,
}

impl TestChain {
    /// Starts at the genesis block of `params`.
    pub fn new(params: ChainParams) -> Self {
        let clock = u64::from(params.genesis_block.header.time);
        let chain = ChainState::open(params, MemoryStore::new()).expect("memory store cannot fail");
        TestChain {
            chain,
            clock,
            salt: 0,
        }
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        self.chain.params()
    }

    /// A "now" at which every built block is acceptable.
    pub fn now(&self) -> u64 {
        self.clock + 1
    }

    /// Dev account `i`'s key (coinbases pay dev account 0).
    pub fn key(&self, i: u32) -> SecretKey {
        dev_secret_key(i)
    }

    /// Builds (and mines) one block on `parent` with `txs`, whose fees are `fees`.
    pub fn block_on(&mut self, parent: &BlockHash, txs: Vec<Transaction>, fees: Amount) -> Block {
        self.clock += u64::from(self.params().block_interval_secs);
        self.salt += 1;
        let pay_to = self.key(0).pubkey_hash();
        let template = self
            .chain
            .block_template_on(
                parent,
                pay_to,
                txs,
                fees,
                self.clock,
                self.salt.to_le_bytes().to_vec(),
            )
            .expect("parent was built by this TestChain");
        let block = mine(template, self.chain.params());
        let now = self.now();
        let report = self
            .chain
            .accept_block(block.clone(), now)
            .expect("memory store cannot fail");
        assert!(
            !matches!(report.outcome, ImportOutcome::Invalid(_)),
            "TestChain built an invalid block: {:?}",
            report.outcome
        );
        block
    }

    /// Builds `n` empty blocks on `parent`.
    pub fn build_on(&mut self, parent: &BlockHash, n: usize) -> Vec<Block> {
        let mut parent = *parent;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let block = self.block_on(&parent, vec![], Amount::ZERO);
            parent = block.block_hash();
            out.push(block);
        }
        out
    }

    /// Builds `n` empty blocks on the builder's active tip.
    pub fn build_chain(&mut self, n: usize) -> Vec<Block> {
        let tip = self.chain.tip().hash;
        self.build_on(&tip, n)
    }

    /// A signed transaction spending `coins` (owned by `key`) to `outputs`.
    pub fn spend(
        &self,
        coins: &[(OutPoint, Coin)],
        key: &SecretKey,
        outputs: Vec<TxOut>,
    ) -> Transaction {
        let amounts: Vec<(OutPoint, Amount)> =
            coins.iter().map(|(o, c)| (*o, c.output.amount)).collect();
        signed_spend(self.params(), &amounts, key, outputs)
    }

    /// The genesis allocation of dev account `i`.
    pub fn genesis_coin(&self, i: u32) -> (OutPoint, Coin) {
        let genesis = &self.params().genesis_block.txs[0];
        let output = genesis.outputs[i as usize];
        (
            OutPoint {
                txid: genesis.txid(),
                vout: i,
            },
            Coin {
                output,
                height: 0,
                is_coinbase: false,
            },
        )
    }
}
