//! The block tree and the active chain.
//!
//! - [`fork_choice`]: which tip is best — most cumulative work, first seen on ties.
//! - [`ChainState`] (in [`state`]): accepts headers and blocks, connects and disconnects
//!   them with undo data, reorganises to the best tip, and reports what changed.
//! - [`orphans`]: blocks whose parent has not arrived yet.
//! - [`pipeline`]: importing blocks that arrive together with each block's context-free
//!   checks one block ahead, on another thread.
//! - [`outcome`]: what the chain state reports — import outcomes, tip changes, chain tips,
//!   and the errors that are not consensus verdicts.

pub mod fork_choice;
pub mod orphans;
pub mod outcome;
pub mod pipeline;
pub mod state;

pub use crate::block_index::{BlockEntry, Validity};
pub use outcome::{
    ChainError, ChainTip, HashedBlock, HeaderOutcome, ImportOutcome, ImportReport, TipChanged,
    TipStatus,
};
pub use state::admission::{Admission, HeadersReport};
pub use state::{ChainState, GroupWriter};
