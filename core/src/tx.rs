//! UTXO transactions.
//!
//! A transaction spends [`OutPoint`]s and creates [`TxOut`]s paying to a [`PubkeyHash`].
//! Each input carries the public key and a low-S ECDSA signature over the sighash of
//! [`Transaction::sighash`]. A *coinbase* has no inputs; its `lock_height` must equal the
//! height of its block, which makes every coinbase txid unique (BIP34, and so BIP30).

use crate::amount::Amount;
use crate::encoding;
use crate::hash::{Hash256, Txid, Wtxid, sha256d, sha256d_parts};
use crate::keys::{PubkeyHash, PublicKeyBytes, SignatureBytes};
use sha2::{Digest, Sha256};

/// A reference to an output of an earlier transaction.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Default,
    bincode::Encode,
    bincode::Decode,
)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Txid,
    /// Its index among that transaction's outputs.
    pub vout: u32,
}

impl std::fmt::Display for OutPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.txid, self.vout)
    }
}

/// An input: which output it spends and the proof that the spender owns it.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct TxIn {
    /// The output being spent.
    pub prevout: OutPoint,
    /// Compact low-S ECDSA signature over the input's sighash.
    pub signature: SignatureBytes,
    /// Compressed public key whose [`PubkeyHash`] the spent output pays to.
    pub public_key: PublicKeyBytes,
}

/// An output: an amount locked to the hash of a public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct TxOut {
    /// Value in base units.
    pub amount: Amount,
    /// Who can spend it.
    pub address: PubkeyHash,
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Transaction {
    /// Format version (currently 1).
    pub version: u32,
    /// Inputs; empty for a coinbase.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// Lowest block height this transaction may be mined at; a coinbase's must equal its
    /// block height.
    pub lock_height: u32,
    /// Free bytes (at most [`MAX_TX_DATA`]): the coinbase's extranonce, or a memo.
    pub data: Vec<u8>,
}

/// The most free bytes a transaction may carry in [`Transaction::data`].
pub const MAX_TX_DATA: usize = 100;

/// Domain tag of the signature hash, so a Cairn sighash can never collide with another hash.
const SIGHASH_TAG: &[u8] = b"cairn/sighash/v1";

impl Transaction {
    /// Whether this is a coinbase (no inputs).
    pub fn is_coinbase(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The transaction id, which excludes signatures and public keys.
    pub fn txid(&self) -> Txid {
        let mut buf = Vec::with_capacity(64 + self.inputs.len() * 36 + self.outputs.len() * 28);
        self.write_unsigned(&mut buf, |_| None);
        Txid(sha256d(&buf))
    }

    /// Hash of the full encoding, signatures included (what the merkle tree commits to).
    pub fn wtxid(&self) -> Wtxid {
        Wtxid(sha256d(&encoding::encode(self)))
    }

    /// Both ids: the txid, then the wtxid.
    pub fn ids(&self) -> (Txid, Wtxid) {
        (self.txid(), self.wtxid())
    }

    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        encoding::encoded_size(self)
    }

    /// The message input `index` signs. It commits to the network (so a devnet signature is
    /// worthless on another network), the index, every input's outpoint *and amount* (so a
    /// signer cannot be lied to about the fee), every output, the lock height and the data.
    /// `spent_amounts[i]` is the amount of the output input `i` spends.
    pub fn sighash(
        &self,
        network_magic: &Hash256,
        spent_amounts: &[Amount],
        index: usize,
    ) -> Hash256 {
        SighashCache::new(self, network_magic, spent_amounts).sighash(index)
    }

    /// Signs every input: `signers[i]` holds the amount input `i` spends and the key that
    /// owns it. Sets each input's public key and signature.
    pub fn sign(&mut self, network_magic: &Hash256, signers: &[(Amount, &crate::keys::SecretKey)]) {
        assert_eq!(signers.len(), self.inputs.len(), "one signer per input");
        let amounts: Vec<Amount> = signers.iter().map(|(a, _)| *a).collect();
        let sighashes: Vec<Hash256> = {
            let cache = SighashCache::new(self, network_magic, &amounts);
            (0..self.inputs.len()).map(|i| cache.sighash(i)).collect()
        };
        for ((input, (_, key)), sighash) in self.inputs.iter_mut().zip(signers).zip(sighashes) {
            input.public_key = key.public_key();
            input.signature = key.sign_hash(&sighash);
        }
    }

    /// Serialises the signature-free part, optionally with each input's spent amount.
    fn write_unsigned(&self, buf: &mut Vec<u8>, amount_of: impl Fn(usize) -> Option<Amount>) {
        buf.extend_from_slice(&self.version.to_le_bytes());
        buf.extend_from_slice(&(self.inputs.len() as u64).to_le_bytes());
        for (i, input) in self.inputs.iter().enumerate() {
            buf.extend_from_slice(input.prevout.txid.as_bytes());
            buf.extend_from_slice(&input.prevout.vout.to_le_bytes());
            if let Some(amount) = amount_of(i) {
                buf.extend_from_slice(&amount.to_base().to_le_bytes());
            }
        }
        buf.extend_from_slice(&(self.outputs.len() as u64).to_le_bytes());
        for output in &self.outputs {
            buf.extend_from_slice(&output.amount.to_base().to_le_bytes());
            buf.extend_from_slice(&output.address.0);
        }
        buf.extend_from_slice(&self.lock_height.to_le_bytes());
        buf.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        buf.extend_from_slice(&self.data);
    }
}

/// Computes the per-transaction part of the sighash once, then each input's sighash cheaply.
pub struct SighashCache<'a> {
    network_magic: &'a Hash256,
    common: [u8; 32],
}

impl<'a> SighashCache<'a> {
    /// Prepares sighashes for `tx`; `spent_amounts` must have one entry per input.
    pub fn new(tx: &Transaction, network_magic: &'a Hash256, spent_amounts: &[Amount]) -> Self {
        let mut buf = Vec::with_capacity(64 + tx.inputs.len() * 44 + tx.outputs.len() * 28);
        tx.write_unsigned(&mut buf, |i| {
            Some(spent_amounts.get(i).copied().unwrap_or(Amount::ZERO))
        });
        SighashCache {
            network_magic,
            common: Sha256::digest(&buf).into(),
        }
    }

    /// The sighash of input `index`.
    pub fn sighash(&self, index: usize) -> Hash256 {
        sha256d_parts(&[
            SIGHASH_TAG,
            &self.network_magic.0,
            &(index as u32).to_le_bytes(),
            &self.common,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                prevout: OutPoint {
                    txid: Txid(sha256d(b"prev")),
                    vout: 3,
                },
                signature: [5; 64],
                public_key: [2; 33],
            }],
            outputs: vec![TxOut {
                amount: Amount::from_base(1000),
                address: PubkeyHash([9; 20]),
            }],
            lock_height: 0,
            data: vec![],
        }
    }

    #[test]
    fn txid_excludes_signatures_but_wtxid_does_not() {
        let a = sample();
        let mut b = a.clone();
        b.inputs[0].signature = [6; 64];
        b.inputs[0].public_key = [3; 33];
        assert_eq!(a.txid(), b.txid());
        assert_ne!(a.wtxid(), b.wtxid());
    }

    #[test]
    fn sighash_commits_to_network_amounts_outputs_and_index() {
        let tx = sample();
        let net = sha256d(b"net-a");
        let base = tx.sighash(&net, &[Amount::from_base(5000)], 0);
        assert_ne!(
            base,
            tx.sighash(&sha256d(b"net-b"), &[Amount::from_base(5000)], 0)
        );
        assert_ne!(base, tx.sighash(&net, &[Amount::from_base(5001)], 0));
        assert_ne!(base, tx.sighash(&net, &[Amount::from_base(5000)], 1));
        let mut other = tx.clone();
        other.outputs[0].amount = Amount::from_base(999);
        assert_ne!(base, other.sighash(&net, &[Amount::from_base(5000)], 0));
        let mut resigned = tx.clone();
        resigned.inputs[0].signature = [1; 64];
        assert_eq!(base, resigned.sighash(&net, &[Amount::from_base(5000)], 0));
    }

    #[test]
    fn encoding_round_trips() {
        let tx = sample();
        let bytes = encoding::encode(&tx);
        assert_eq!(bytes.len(), tx.encoded_size());
        assert_eq!(encoding::decode::<Transaction>(&bytes).unwrap(), tx);
    }
}
