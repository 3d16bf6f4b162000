//! The ban list on disk, `DATADIR/banlist.json` (like Core's), so bans survive a restart.
//!
//! [`load`] reads it once at startup. After that the event loop hands every new version
//! of the list to a [`BanStore`], whose task writes it off the loop: a slow disk never
//! stalls the swarm, writes are at least [`MIN_WRITE_INTERVAL`] apart, and versions that
//! pile up meanwhile are written once (the newest wins).
//! [`BanStore::close`] waits for the last write, so a ban set just before shutdown is kept.

use super::peers::{Ban, BanList};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Reads the ban list at `path` (a missing file is an empty list), dropping bans that
/// ended at `now`.
pub fn load(path: &Path, now: u64) -> Result<BanList, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bans: Vec<Ban> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("ban list {} is not valid JSON: {e}", path.display()))?;
            Ok(BanList::new(bans, now))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BanList::default()),
        Err(e) => Err(format!("reading ban list {}: {e}", path.display())),
    }
}

/// Writes `bans` to `path` atomically (a temporary file renamed over the old one).
pub fn write(path: &Path, bans: &[Ban]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(bans).expect("bans always serialise");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path))
}

/// Shortest time between two writes of the file.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(500);

/// A handle to the task that writes the ban list.
#[derive(Debug)]
pub struct BanStore {
    latest: watch::Sender<Vec<Ban>>,
    writer: JoinHandle<()>,
}

impl BanStore {
    /// Spawns the writer for `path`.
    pub fn spawn(path: PathBuf) -> BanStore {
        let (latest, versions) = watch::channel(Vec::new());
        BanStore {
            latest,
            writer: tokio::spawn(write_each_version(path, versions)),
        }
    }

    /// Queues `bans` (the whole list) to be written; returns at once.
    pub fn save(&self, bans: Vec<Ban>) {
        self.latest.send_replace(bans);
    }

    /// Waits until the last list queued is on disk.
    pub async fn close(self) {
        let BanStore { latest, writer } = self;
        drop(latest);
        let _ = writer.await;
    }
}

async fn write_each_version(path: PathBuf, mut versions: watch::Receiver<Vec<Ban>>) {
    // `changed` still reports a version sent just before the handle closed.
    while versions.changed().await.is_ok() {
        let bans = versions.borrow_and_update().clone();
        let file = path.clone();
        let written = tokio::task::spawn_blocking(move || write(&file, &bans)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("writing the ban list {}: {e}", path.display()),
            Err(e) => tracing::warn!("writing the ban list {}: {e}", path.display()),
        }
        // At most one write per interval: versions that arrive meanwhile are written once.
        if versions.has_changed().is_ok() {
            tokio::time::sleep(MIN_WRITE_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::peers::DEFAULT_BAN_DURATION;
    use libp2p::PeerId;
    use std::time::Duration;

    #[tokio::test]
    async fn bans_persist_and_expired_ones_are_dropped_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banlist.json");
        let mut list = load(&path, 1000).unwrap();
        assert!(list.list().is_empty(), "a missing file is an empty list");
        let (a, b) = (PeerId::random(), PeerId::random());
        list.ban(a, Duration::from_secs(10), "short".into(), 1000);
        list.ban(b, DEFAULT_BAN_DURATION, "manually banned".into(), 1000);
        let store = BanStore::spawn(path.clone());
        store.save(list.list());
        store.close().await;

        let reloaded = load(&path, 1005).unwrap();
        assert_eq!(reloaded.list(), list.list());
        let reloaded = load(&path, 1011).unwrap();
        assert_eq!(reloaded.list().len(), 1, "expired bans are dropped on load");

        assert_eq!(list.expire(1010), vec![a]);
        assert!(list.unban(&b));
        let store = BanStore::spawn(path.clone());
        store.save(list.list());
        store.close().await;
        assert!(load(&path, 1011).unwrap().list().is_empty());

        std::fs::write(&path, b"not json").unwrap();
        assert!(load(&path, 0).unwrap_err().contains("not valid JSON"));
    }

    #[tokio::test]
    async fn the_newest_list_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banlist.json");
        let mut list = BanList::default();
        let store = BanStore::spawn(path.clone());
        for _ in 0..20 {
            list.ban(PeerId::random(), DEFAULT_BAN_DURATION, "x".into(), 1000);
            store.save(list.list());
        }
        store.close().await;
        assert_eq!(load(&path, 1000).unwrap().list(), list.list());
    }
}
