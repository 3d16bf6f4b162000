//! The block index: one [`BlockEntry`] per known header, as the store persists it and the
//! chain state keeps it in memory. Below both [`crate::store`] and [`crate::chain`], so the
//! store can persist entries without knowing the chain state.

use crate::block::BlockHeader;
use crate::hash::BlockHash;
use crate::pow::Work;

/// What is known about a block's validity.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Validity {
    /// Header checks passed; transactions not yet validated.
    HeaderValid,
    /// Fully validated: connected to the active chain at least once.
    Valid,
    /// Broke a rule (or was invalidated by hand); the reason is the reject string.
    Invalid {
        /// Why.
        reason: String,
    },
    /// Descends from an invalid block.
    InvalidAncestor(BlockHash),
}

impl Validity {
    /// Invalid itself or by descent.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Validity::Invalid { .. } | Validity::InvalidAncestor(_)
        )
    }
}

/// One node of the block tree, as persisted in the block index.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BlockEntry {
    /// Header hash.
    pub hash: BlockHash,
    /// The header.
    pub header: BlockHeader,
    /// Height (genesis = 0).
    pub height: u32,
    /// Work of this block and all its ancestors.
    pub chainwork: Work,
    /// Whether the body is stored.
    pub has_data: bool,
    /// Validity.
    pub validity: Validity,
    /// Order in which the block's whole chain became available (0 = not yet). Breaks ties
    /// between equal-work tips in favour of the first seen.
    pub seq: u64,
}

impl bincode::Encode for Work {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.to_be_bytes().encode(e)
    }
}

impl<C> bincode::Decode<C> for Work {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Work::from_be_bytes(<[u8; 32]>::decode(d)?))
    }
}
bincode::impl_borrow_decode!(Work);
