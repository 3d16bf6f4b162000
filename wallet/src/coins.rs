//! What the node says the wallet owns: confirmed coins, mempool activity, maturity, and
//! the balances and spendable set derived from them.
//!
//! [`CoinSnapshot::fetch`] asks the node (`getblockchaininfo`, `getaddressutxos` and
//! `getaddressmempool` for every wallet address); everything else here is pure, so tests
//! build snapshots by hand.
//!
//! Spendable means: a confirmed coin that is mature (a coinbase needs `coinbase_maturity`
//! confirmations at the height the spend would be mined, tip + 1) and not already spent by
//! a mempool transaction, or an output of a mempool transaction to the wallet that no
//! mempool transaction spends yet. Excluding mempool-spent coins is what keeps the wallet
//! from double-spending its own unconfirmed payments by accident.

use crate::rpc::{RpcClient, RpcError};
use cairn_core::validation::coinbase_spendable_height;
use cairn_core::{Amount, ChainParams, Coin, OutPoint, PubkeyHash, TxOut, Txid};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// A coin paying to one of the wallet's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletCoin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Its value and owner.
    pub output: TxOut,
    /// Height of the block that created it; `None` for an output of a mempool transaction.
    pub height: Option<u32>,
    /// Created by a coinbase.
    pub coinbase: bool,
}

impl WalletCoin {
    /// Mined on the active chain.
    pub fn is_confirmed(&self) -> bool {
        self.height.is_some()
    }

    /// The coin as `cairn-core`'s validation sees it when spent in a block at `height`
    /// (an unconfirmed parent counts as created at that height, as the node's mempool does).
    pub fn to_core(&self, height: u32) -> Coin {
        Coin {
            output: self.output,
            height: self.height.unwrap_or(height),
            is_coinbase: self.coinbase,
        }
    }
}

/// The wallet's balances, in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Balance {
    /// Mature confirmed coins no mempool transaction spends: spendable now.
    pub confirmed: Amount,
    /// Outputs of mempool transactions to the wallet that nothing spends yet.
    pub unconfirmed: Amount,
    /// Coinbase outputs not yet mature.
    pub immature: Amount,
    /// Confirmed coins that mempool transactions spend (leaving the wallet once mined).
    pub spending: Amount,
}

impl Balance {
    /// Confirmed + unconfirmed + immature: what the wallet will hold once the mempool
    /// transactions are mined.
    pub fn total(&self) -> Amount {
        Amount::from_base(
            self.confirmed
                .to_base()
                .saturating_add(self.unconfirmed.to_base())
                .saturating_add(self.immature.to_base()),
        )
    }
}

/// Why the node's view could not be had.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The node runs another network than the wallet's parameters.
    #[error(
        "the node at {url} runs another network ({what}: node {node}, wallet {wallet}); pass --genesis with the node's genesis file"
    )]
    WrongNetwork {
        /// The node's URL.
        url: String,
        /// What differs.
        what: &'static str,
        /// The node's value.
        node: String,
        /// The wallet's value.
        wallet: String,
    },
}

/// The parts of `getblockchaininfo` the wallet uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ChainInfo {
    /// Network name.
    #[serde(default)]
    pub chain: String,
    /// Height of the active tip.
    pub blocks: u32,
    /// Hash of the active tip.
    #[serde(default)]
    pub bestblockhash: String,
    /// Address prefix (Cairn extension).
    #[serde(default)]
    pub hrp: Option<String>,
    /// Confirmations a coinbase needs (Cairn extension).
    #[serde(default)]
    pub coinbase_maturity: Option<u32>,
    /// Genesis block hash (Cairn extension).
    #[serde(default)]
    pub genesis: Option<String>,
}

impl ChainInfo {
    /// Calls `getblockchaininfo` and checks the node runs the network of `params`.
    pub fn fetch(rpc: &RpcClient, params: &ChainParams) -> Result<ChainInfo, NodeError> {
        let info: ChainInfo = rpc.call_as("getblockchaininfo", json!([]))?;
        let mismatch = |what, node: &str, wallet: String| NodeError::WrongNetwork {
            url: rpc.url().to_owned(),
            what,
            node: node.to_owned(),
            wallet,
        };
        if let Some(hrp) = &info.hrp
            && *hrp != params.hrp
        {
            return Err(mismatch("address prefix", hrp, params.hrp.clone()));
        }
        // The genesis hash commits to every consensus parameter, the network id (and so the
        // signature domain) included.
        let genesis = match &info.genesis {
            Some(g) => Some(g.clone()),
            None => match rpc.call("getblockhash", json!([0])) {
                Ok(v) => v.as_str().map(str::to_owned),
                Err(e) if e.is_answer() => None,
                Err(e) => return Err(e.into()),
            },
        };
        if let Some(genesis) = genesis
            && genesis != params.genesis_hash.to_string()
        {
            return Err(mismatch(
                "genesis block",
                &genesis,
                params.genesis_hash.to_string(),
            ));
        }
        Ok(info)
    }
}

#[derive(Deserialize)]
struct UtxoEntry {
    txid: Txid,
    vout: u32,
    amount: u64,
    height: u32,
    coinbase: bool,
}

#[derive(Deserialize)]
struct MempoolOutpoint {
    txid: Txid,
    vout: u32,
}

#[derive(Deserialize)]
struct MempoolReceived {
    txid: Txid,
    vout: u32,
    amount: u64,
}

#[derive(Deserialize)]
struct AddressMempool {
    #[serde(default)]
    spent: Vec<MempoolOutpoint>,
    #[serde(default)]
    received: Vec<MempoolReceived>,
}

/// The wallet's coins as one node sees them at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoinSnapshot {
    /// Height of the node's active tip.
    pub tip_height: u32,
    /// Confirmations a coinbase output needs before it may be spent.
    pub coinbase_maturity: u32,
    /// Confirmed coins of the wallet's addresses, by outpoint.
    pub confirmed: BTreeMap<OutPoint, WalletCoin>,
    /// Outputs of mempool transactions paying the wallet, by outpoint.
    pub mempool_received: BTreeMap<OutPoint, WalletCoin>,
    /// Outpoints of the wallet that mempool transactions spend.
    pub mempool_spent: BTreeSet<OutPoint>,
}

impl CoinSnapshot {
    /// Asks the node about every address in `addresses`.
    pub fn fetch(
        rpc: &RpcClient,
        params: &ChainParams,
        addresses: &[PubkeyHash],
    ) -> Result<CoinSnapshot, NodeError> {
        let info = ChainInfo::fetch(rpc, params)?;
        let mut snapshot = CoinSnapshot {
            tip_height: info.blocks,
            coinbase_maturity: info.coinbase_maturity.unwrap_or(params.coinbase_maturity),
            ..CoinSnapshot::default()
        };
        for hash in addresses {
            let address = params.address(hash);
            let utxos: Vec<UtxoEntry> = rpc.call_as("getaddressutxos", json!([address]))?;
            for u in utxos {
                let outpoint = OutPoint {
                    txid: u.txid,
                    vout: u.vout,
                };
                snapshot.confirmed.insert(
                    outpoint,
                    WalletCoin {
                        outpoint,
                        output: TxOut {
                            amount: Amount::from_base(u.amount),
                            address: *hash,
                        },
                        height: Some(u.height),
                        coinbase: u.coinbase,
                    },
                );
            }
            let mempool: AddressMempool = rpc.call_as("getaddressmempool", json!([address]))?;
            for s in mempool.spent {
                snapshot.mempool_spent.insert(OutPoint {
                    txid: s.txid,
                    vout: s.vout,
                });
            }
            for r in mempool.received {
                let outpoint = OutPoint {
                    txid: r.txid,
                    vout: r.vout,
                };
                snapshot.mempool_received.insert(
                    outpoint,
                    WalletCoin {
                        outpoint,
                        output: TxOut {
                            amount: Amount::from_base(r.amount),
                            address: *hash,
                        },
                        height: None,
                        coinbase: false,
                    },
                );
            }
        }
        Ok(snapshot)
    }

    /// The height a transaction built now would be mined at.
    pub fn next_height(&self) -> u32 {
        self.tip_height.saturating_add(1)
    }

    /// Whether `coin` may be spent in the next block (only coinbases have to wait).
    pub fn is_mature(&self, coin: &WalletCoin) -> bool {
        match (coin.coinbase, coin.height) {
            (true, Some(_)) => self.next_height() >= self.spendable_at(coin),
            _ => true,
        }
    }

    /// The first height at which `coin` may be spent.
    pub fn spendable_at(&self, coin: &WalletCoin) -> u32 {
        match (coin.coinbase, coin.height) {
            (true, Some(height)) => coinbase_spendable_height(height, self.coinbase_maturity),
            _ => self.next_height(),
        }
    }

    /// Coins a new transaction may spend: mature, unspent confirmed coins first, then
    /// unspent outputs of mempool transactions.
    pub fn spendable(&self) -> Vec<WalletCoin> {
        let unspent = |c: &&WalletCoin| !self.mempool_spent.contains(&c.outpoint);
        self.confirmed
            .values()
            .filter(unspent)
            .filter(|c| self.is_mature(c))
            .chain(self.mempool_received.values().filter(unspent))
            .copied()
            .collect()
    }

    /// Coinbase outputs that are not mature yet, with the height they become spendable.
    pub fn immature(&self) -> Vec<(WalletCoin, u32)> {
        self.confirmed
            .values()
            .filter(|c| !self.is_mature(c) && !self.mempool_spent.contains(&c.outpoint))
            .map(|c| (*c, self.spendable_at(c)))
            .collect()
    }

    /// The balances of the whole wallet.
    pub fn balance(&self) -> Balance {
        self.balance_where(|_| true)
    }

    /// The balances of the coins paying to `address`.
    pub fn balance_of(&self, address: &PubkeyHash) -> Balance {
        self.balance_where(|c| c.output.address == *address)
    }

    fn balance_where(&self, wanted: impl Fn(&WalletCoin) -> bool) -> Balance {
        let mut balance = Balance::default();
        let add = |total: &mut Amount, coin: &WalletCoin| {
            *total =
                Amount::from_base(total.to_base().saturating_add(coin.output.amount.to_base()));
        };
        for coin in self.confirmed.values().filter(|c| wanted(c)) {
            if self.mempool_spent.contains(&coin.outpoint) {
                add(&mut balance.spending, coin);
            } else if self.is_mature(coin) {
                add(&mut balance.confirmed, coin);
            } else {
                add(&mut balance.immature, coin);
            }
        }
        for coin in self.mempool_received.values().filter(|c| wanted(c)) {
            if !self.mempool_spent.contains(&coin.outpoint) {
                add(&mut balance.unconfirmed, coin);
            }
        }
        balance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coin(n: u8, amount: u64, height: Option<u32>, coinbase: bool) -> WalletCoin {
        let outpoint = OutPoint {
            txid: Txid::from_byte_array([n; 32]),
            vout: 0,
        };
        WalletCoin {
            outpoint,
            output: TxOut {
                amount: Amount::from_base(amount),
                address: PubkeyHash([1; 20]),
            },
            height,
            coinbase,
        }
    }

    fn snapshot(coins: &[WalletCoin], spent: &[u8]) -> CoinSnapshot {
        let mut s = CoinSnapshot {
            tip_height: 20,
            coinbase_maturity: 10,
            ..CoinSnapshot::default()
        };
        for c in coins {
            if c.is_confirmed() {
                s.confirmed.insert(c.outpoint, *c);
            } else {
                s.mempool_received.insert(c.outpoint, *c);
            }
        }
        for n in spent {
            s.mempool_spent.insert(coin(*n, 0, None, false).outpoint);
        }
        s
    }

    #[test]
    fn coinbase_matures_at_the_next_block_height() {
        let s = snapshot(&[], &[]);
        // Tip 20, next block 21: a coinbase of height 11 has 10 confirmations then.
        assert!(s.is_mature(&coin(1, 1, Some(11), true)));
        assert!(!s.is_mature(&coin(1, 1, Some(12), true)));
        assert_eq!(s.spendable_at(&coin(1, 1, Some(12), true)), 22);
        assert!(s.is_mature(&coin(1, 1, Some(20), false)));
    }

    #[test]
    fn balances_split_confirmed_unconfirmed_immature_and_spending() {
        let coins = [
            coin(1, 100, Some(5), false),
            coin(2, 200, Some(15), true), // immature
            coin(3, 400, Some(6), false), // spent by a mempool tx
            coin(4, 800, None, false),    // mempool change
            coin(5, 1600, Some(1), true), // mature coinbase
        ];
        let s = snapshot(&coins, &[3]);
        let b = s.balance();
        assert_eq!(b.confirmed, Amount::from_base(1700));
        assert_eq!(b.unconfirmed, Amount::from_base(800));
        assert_eq!(b.immature, Amount::from_base(200));
        assert_eq!(b.spending, Amount::from_base(400));
        assert_eq!(b.total(), Amount::from_base(2700));

        let spendable: Vec<u64> = s
            .spendable()
            .iter()
            .map(|c| c.output.amount.to_base())
            .collect();
        assert_eq!(spendable, vec![100, 1600, 800]);
        assert_eq!(s.immature().len(), 1);
    }

    #[test]
    fn mempool_spent_outputs_of_mempool_txs_are_not_spendable() {
        let s = snapshot(&[coin(4, 800, None, false)], &[4]);
        assert!(s.spendable().is_empty());
        assert_eq!(s.balance().unconfirmed, Amount::ZERO);
    }
}
