//! [`Coin`]: the element of the UTXO set. Validation checks transactions against coins and
//! the store keeps them, so the type sits below both.

use crate::tx::TxOut;

/// An unspent output and where it came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, bincode::Encode, bincode::Decode)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Created by a coinbase (subject to maturity).
    pub is_coinbase: bool,
}
