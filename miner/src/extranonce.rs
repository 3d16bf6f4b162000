//! The extranonce: a counter in the coinbase that gives a template more than 2^32 headers.
//!
//! Layout: the mined coinbase's `data` is the template coinbase's `data` followed by the
//! extranonce as 8 little-endian bytes ([`EXTRANONCE_LEN`]), so a template may carry at most
//! `MAX_TX_DATA - 8` bytes of its own. Changing the extranonce changes the coinbase's wtxid and
//! so the merkle root; the coinbase's merkle branch is computed once per template, so a roll
//! rehashes the coinbase and `log2(n)` inner nodes, not the whole tree.

use crate::error::MinerError;
use cairn_core::merkle::{coinbase_branch, root_from_coinbase_branch};
use cairn_core::tx::MAX_TX_DATA;
use cairn_core::{Block, BlockHeader, Hash256, Transaction};

/// Bytes the extranonce takes at the end of the coinbase's `data`.
pub const EXTRANONCE_LEN: usize = 8;

/// A template prepared for extranonce rolling.
#[derive(Debug)]
pub(crate) struct Extranonces<'a> {
    template: &'a Block,
    branch: Vec<Hash256>,
}

impl<'a> Extranonces<'a> {
    /// Checks that `template` starts with a coinbase with room for the extranonce, and
    /// computes the coinbase's merkle branch.
    pub(crate) fn new(template: &'a Block) -> Result<Self, MinerError> {
        let coinbase = template.txs.first().ok_or(MinerError::MissingCoinbase)?;
        if !coinbase.is_coinbase() {
            return Err(MinerError::FirstTxNotCoinbase);
        }
        if coinbase.data.len() + EXTRANONCE_LEN > MAX_TX_DATA {
            return Err(MinerError::CoinbaseDataTooLong {
                len: coinbase.data.len(),
                extranonce: EXTRANONCE_LEN,
                max: MAX_TX_DATA,
            });
        }
        let wtxids: Vec<_> = template.txs.iter().map(Transaction::wtxid).collect();
        Ok(Extranonces {
            template,
            branch: coinbase_branch(&wtxids),
        })
    }

    /// The template's coinbase carrying `extranonce`.
    pub(crate) fn coinbase(&self, extranonce: u64) -> Transaction {
        let mut coinbase = self.template.txs[0].clone();
        coinbase.data.extend_from_slice(&extranonce.to_le_bytes());
        coinbase
    }

    /// The template's header with the merkle root of the block carrying `extranonce`.
    pub(crate) fn header(&self, extranonce: u64) -> BlockHeader {
        let coinbase = self.coinbase(extranonce).wtxid();
        BlockHeader {
            merkle_root: root_from_coinbase_branch(&coinbase, &self.branch),
            ..self.template.header
        }
    }

    /// The whole block for `extranonce` and `nonce`.
    pub(crate) fn block(&self, extranonce: u64, nonce: u32) -> Block {
        let mut txs = self.template.txs.clone();
        txs[0] = self.coinbase(extranonce);
        Block {
            header: BlockHeader {
                nonce,
                ..self.header(extranonce)
            },
            txs,
        }
    }
}

/// `template` as the miner would produce it for `extranonce`, before the nonce search: the
/// extranonce appended to the coinbase's data and the merkle root rebuilt.
pub fn with_extranonce(template: &Block, extranonce: u64) -> Result<Block, MinerError> {
    Ok(Extranonces::new(template)?.block(extranonce, template.header.nonce))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::testkit::TestChain;
    use cairn_core::{Amount, ChainParams};

    fn template(extra_data: Vec<u8>, txs: usize) -> Block {
        let chain = TestChain::new(ChainParams::regtest());
        let key = chain.key(0);
        let coin = chain.genesis_coin(0);
        let mut spends = Vec::new();
        if txs > 0 {
            let amount = coin.1.output.amount;
            let outputs = (0..txs as u64)
                .map(|i| cairn_core::TxOut {
                    amount: Amount::from_base(amount.to_base() / 4 - i),
                    address: key.pubkey_hash(),
                })
                .collect();
            spends.push(chain.spend(&[coin], &key, outputs));
        }
        let now = chain.now();
        chain
            .chain
            .block_template(key.pubkey_hash(), spends, Amount::ZERO, now, extra_data)
    }

    #[test]
    fn rolled_roots_match_a_full_recompute_and_differ() {
        for txs in [0, 1] {
            let template = template(vec![7, 7, 7], txs);
            let rolls = Extranonces::new(&template).unwrap();
            let mut roots = std::collections::HashSet::new();
            for extranonce in [0, 1, 2, u64::MAX] {
                let block = rolls.block(extranonce, 42);
                assert_eq!(block.header.merkle_root, block.compute_merkle_root());
                assert_eq!(block.txs[0].data[..3], [7, 7, 7]);
                assert_eq!(block.txs[0].data[3..], extranonce.to_le_bytes());
                assert_eq!(block.txs[1..], template.txs[1..]);
                assert_eq!(block.header.nonce, 42);
                assert!(
                    roots.insert(block.header.merkle_root),
                    "extranonce {extranonce} repeats a root"
                );
            }
            assert!(!roots.contains(&template.header.merkle_root));
        }
    }

    #[test]
    fn templates_without_room_or_coinbase_are_rejected() {
        let full = template(vec![0; MAX_TX_DATA - EXTRANONCE_LEN + 1], 0);
        assert!(matches!(
            Extranonces::new(&full),
            Err(MinerError::CoinbaseDataTooLong { .. })
        ));
        let fits = template(vec![0; MAX_TX_DATA - EXTRANONCE_LEN], 0);
        assert_eq!(
            with_extranonce(&fits, 1).unwrap().txs[0].data.len(),
            MAX_TX_DATA
        );

        let mut empty = fits.clone();
        empty.txs.clear();
        assert_eq!(
            Extranonces::new(&empty).unwrap_err(),
            MinerError::MissingCoinbase
        );
        let with_spend = template(vec![], 1);
        let mut reordered = with_spend.clone();
        reordered.txs.swap(0, 1);
        assert_eq!(
            Extranonces::new(&reordered).unwrap_err(),
            MinerError::FirstTxNotCoinbase
        );
    }
}
