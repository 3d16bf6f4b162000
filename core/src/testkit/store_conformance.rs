//! A conformance suite every [`ChainStore`] implementation must pass (the node runs it
//! against rocksdb): a chain built on the store under test and one built on
//! [`MemoryStore`] end in the same state, reopening resumes, and batches are applied whole.

use crate::chain::ChainState;
use crate::hash::BlockHash;
use crate::params::ChainParams;
use crate::store::{ChainStore, MemoryStore, StoreBatch};
use crate::testkit::TestChain;
use crate::tx::OutPoint;

/// Writes then reads back every kind of record, and checks batches are applied whole.
pub fn run<S: ChainStore>(mut fresh: impl FnMut() -> S) {
    // A chain built on this store and one built on MemoryStore end in the same state.
    let params = ChainParams::regtest();
    let mut kit = TestChain::new(params.clone());
    let blocks = kit.build_chain(12);
    let mut chain = ChainState::open(params.clone(), fresh()).expect("open fresh store");
    for b in &blocks {
        chain
            .accept_block(b.clone(), kit.now())
            .expect("store works");
    }
    assert_eq!(
        chain.tip().hash,
        blocks.last().expect("12 blocks").block_hash()
    );
    let mut mem = ChainState::open(params.clone(), MemoryStore::new()).expect("memory store");
    for b in &blocks {
        mem.accept_block(b.clone(), kit.now())
            .expect("memory store works");
    }
    assert_eq!(
        chain.utxo_stats().expect("stats"),
        mem.utxo_stats().expect("stats")
    );
    let tip = chain.tip().hash;
    assert_eq!(chain.store().tip().expect("tip"), Some(tip));
    assert!(chain.store().block(&tip).expect("read").is_some());
    assert!(chain.store().undo(&tip).expect("read").is_some());
    assert_eq!(chain.store().load_index().expect("index").len(), 13);

    // Reopening resumes at the same tip with the same UTXO set.
    let stats = chain.utxo_stats().expect("stats");
    let store = chain.into_store();
    let reopened = ChainState::open(params, store).expect("reopen");
    assert_eq!(reopened.tip().hash, tip);
    assert_eq!(reopened.utxo_stats().expect("stats"), stats);

    // An empty batch changes nothing; absent keys read as None.
    let mut s = fresh();
    s.write(StoreBatch::default()).expect("empty batch");
    assert_eq!(s.tip().expect("tip"), None);
    assert_eq!(s.block(&BlockHash::ZERO).expect("read"), None);
    assert_eq!(s.coin(&OutPoint::default()).expect("read"), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_conforms() {
        run(MemoryStore::new);
    }
}
