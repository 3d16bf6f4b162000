//! Builders for valid chains, shared by this crate's tests and other crates' tests (feature
//! `testkit`), and the [`store_conformance`] suite every store must pass. Blocks are mined
//! for real, at the regtest difficulty.

pub mod store_conformance;

use crate::amount::Amount;
use crate::block::Block;
use crate::chain::{ChainState, ImportOutcome};
use crate::hash::BlockHash;
use crate::keys::SecretKey;
use crate::params::{ChainParams, dev_secret_key};
use crate::store::MemoryStore;
use crate::tx::{OutPoint, Transaction, TxIn, TxOut};
use crate::utxo::Coin;
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

/// A chain of signed spends for benchmarks and load tests: one fan-out block splitting every
/// dev allocation into `fan_out` coins of the same account, then blocks whose transactions
/// each spend one of the oldest confirmed coins into two. Coins not yet spent stay in
/// [`SpendWorkload::coins`] (e.g. to feed a mempool with [`SpendWorkload::spends`]).
pub struct SpendWorkload {
    /// The builder holding every block built so far.
    pub builder: TestChain,
    /// The blocks, oldest first (the fan-out block first).
    pub blocks: Vec<Block>,
    /// Confirmed unspent coins with the dev account that owns them, oldest first.
    pub coins: std::collections::VecDeque<(OutPoint, Coin, u32)>,
    fee: u64,
}

impl SpendWorkload {
    /// Starts with the fan-out block; every generated transaction pays `fee`.
    pub fn new(params: ChainParams, fan_out: usize, fee: u64) -> Self {
        let mut work = SpendWorkload {
            builder: TestChain::new(params),
            blocks: Vec::new(),
            coins: Default::default(),
            fee,
        };
        let accounts = work.builder.params().config.dev_accounts.len() as u32;
        let txs = (0..accounts)
            .map(|account| {
                let coin = work.builder.genesis_coin(account);
                (work.split(coin, account, fan_out), account)
            })
            .collect();
        work.mine(txs);
        work
    }

    /// Adds `blocks` blocks of `txs_per_block` spends each.
    pub fn add_blocks(&mut self, blocks: usize, txs_per_block: usize) {
        for _ in 0..blocks {
            assert!(
                self.coins.len() >= txs_per_block,
                "the fan-out must feed every block"
            );
            let txs = self
                .coins
                .drain(..txs_per_block)
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(outpoint, coin, account)| {
                    (self.split((outpoint, coin), account, 2), account)
                })
                .collect();
            self.mine(txs);
        }
    }

    /// Mines blocks splitting the oldest coins into `parts` each until at least `coins`
    /// confirmed coins are unspent: feeds a pool of many independent spends. Each block
    /// stays within a third of the block size limit.
    pub fn widen(&mut self, coins: usize, parts: usize) {
        assert!(parts >= 2, "a split must create coins");
        // Outputs are 28 bytes; an input with its signature about 140.
        let tx_bytes = 140 + 28 * parts;
        let per_block = (self.builder.params().max_block_size / 3 / tx_bytes).max(1);
        while self.coins.len() < coins {
            let wanted = (coins - self.coins.len()).div_ceil(parts - 1);
            let n = wanted.min(per_block).min(self.coins.len());
            let txs = self
                .coins
                .drain(..n)
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(outpoint, coin, account)| {
                    (self.split((outpoint, coin), account, parts), account)
                })
                .collect();
            self.mine(txs);
        }
    }

    /// `n` valid, unmined, independent spends of confirmed coins (removed from `coins`).
    pub fn spends(&mut self, n: usize) -> Vec<Transaction> {
        assert!(self.coins.len() >= n, "not enough confirmed coins left");
        let taken: Vec<_> = self.coins.drain(..n).collect();
        taken
            .into_iter()
            .map(|(outpoint, coin, account)| self.split((outpoint, coin), account, 2))
            .collect()
    }

    /// Non-coinbase transactions in the blocks.
    pub fn tx_count(&self) -> usize {
        self.blocks.iter().map(|b| b.txs.len() - 1).sum()
    }

    /// A signed spend of `coin` (owned by dev `account`) into `parts` outputs back to the same
    /// account, paying exactly the workload's fee (the last output takes the remainder).
    pub fn split(&self, coin: (OutPoint, Coin), account: u32, parts: usize) -> Transaction {
        let key = self.builder.key(account);
        let available = coin.1.output.amount.to_base() - self.fee;
        let share = available / parts as u64;
        let outputs = (0..parts)
            .map(|i| TxOut {
                amount: Amount::from_base(if i + 1 == parts {
                    available - share * (parts as u64 - 1)
                } else {
                    share
                }),
                address: key.pubkey_hash(),
            })
            .collect();
        self.builder.spend(&[coin], &key, outputs)
    }

    /// Mines `txs` on the tip and queues the coins they create.
    fn mine(&mut self, txs: Vec<(Transaction, u32)>) {
        let fees = Amount::from_base(self.fee * txs.len() as u64);
        let height = self.builder.chain.height() + 1;
        for (tx, account) in &txs {
            let txid = tx.txid();
            for (vout, output) in tx.outputs.iter().enumerate() {
                let coin = Coin {
                    output: *output,
                    height,
                    is_coinbase: false,
                };
                self.coins.push_back((
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    coin,
                    *account,
                ));
            }
        }
        let tip = self.builder.chain.tip().hash;
        let block = self
            .builder
            .block_on(&tip, txs.into_iter().map(|(tx, _)| tx).collect(), fees);
        self.blocks.push(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_workload_builds_valid_blocks_and_spendable_leftovers() {
        let mut work = SpendWorkload::new(ChainParams::regtest(), 4, 1000);
        work.add_blocks(3, 10);
        assert_eq!(work.blocks.len(), 4);
        assert_eq!(work.tx_count(), 10 + 3 * 10);
        let mut fresh = ChainState::open(ChainParams::regtest(), MemoryStore::new()).unwrap();
        for block in work.blocks.clone() {
            let report = fresh.accept_block(block, work.builder.now()).unwrap();
            assert_eq!(report.outcome, ImportOutcome::Active);
        }
        work.widen(200, 10);
        assert!(work.coins.len() >= 200);
        for block in work.blocks[4..].iter().cloned() {
            let report = fresh.accept_block(block, work.builder.now()).unwrap();
            assert_eq!(report.outcome, ImportOutcome::Active);
        }
        let spends = work.spends(5);
        let height = fresh.height() + 1;
        for tx in &spends {
            let coins: Vec<Coin> = tx
                .inputs
                .iter()
                .map(|i| fresh.coin(&i.prevout).unwrap().expect("confirmed coin"))
                .collect();
            let fee =
                crate::validation::check_tx_inputs(tx, &coins, height, fresh.params()).unwrap();
            assert_eq!(fee, Amount::from_base(1000));
            crate::validation::verify_tx_signatures(tx, &coins, fresh.params()).unwrap();
        }
    }
}
