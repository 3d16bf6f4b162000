//! Group commit on rocksdb ([`GroupWriter`]): between `begin_group` and `commit_group`
//! every chain step is still one atomic `WriteBatch`, written to the write-ahead log and
//! the memtables at once (so the next step reads its coins), but not synced; the commit
//! syncs the log once, which makes every batch before it durable. After a crash rocksdb
//! replays the log up to its last whole batch: the store reopens on a prefix of the
//! group's steps, never on part of one.
//!
//! Snapshot readers ([`super::StoreReader`]) must not see a tip that is not durable yet
//! (they report it, e.g. `gettxoutsetinfo`): they take their snapshot through the
//! [`Gate`], which holds them while a group is open.

use super::RocksStore;
use cairn_core::chain::GroupWriter;
use cairn_core::store::StoreError;
use std::sync::{Condvar, Mutex, PoisonError};

/// Open while a group's writes are not durable yet.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    closed: Condvar,
}

impl Gate {
    fn set(&self, open: bool) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = open;
        if !open {
            self.closed.notify_all();
        }
    }

    /// Runs `f` (taking a snapshot) when no group is open, holding groups off meanwhile.
    pub fn when_durable<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while *open {
            open = self
                .closed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
        f()
    }
}

impl GroupWriter for RocksStore {
    fn begin_group(&mut self) {
        if !self.grouping {
            self.gate.set(true);
            self.grouping = true;
        }
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        if !self.grouping {
            return Ok(());
        }
        let synced = self.db.flush_wal(true).map_err(|e| {
            StoreError(format!(
                "syncing the write-ahead log of {} failed: {e}",
                self.path.display()
            ))
        });
        self.grouping = false;
        self.gate.set(false);
        synced
    }
}
