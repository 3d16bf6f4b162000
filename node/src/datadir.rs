//! The data directory: its lock, the RPC cookie and `node.json`.
//!
//! Layout of `DATADIR/`:
//! - `.lock` — held (an exclusive OS file lock) for the node's whole life, so a second node on
//!   the same directory fails at once instead of corrupting the first one's state;
//! - `chain/` — the rocksdb chain store;
//! - `.cookie` — `__cookie__:HEX`, new at every start, mode 0600: the RPC credential;
//! - `node.json` — `{"rpc", "p2p", "peer_id", "pid"}` written once the node is ready;
//! - `cairn.toml` — optional settings (every `cairn node` flag has a key);
//! - `wallet.json` — the default wallet file.

use anyhow::{Context, bail};
use cairn_rpc::auth::cookie_path;
use cairn_rpc::{COOKIE_USER, NodeInfo};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Held for the node's lifetime; the OS releases the lock when it is dropped or the
    /// process dies (even by `kill -9`).
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and takes its lock.
    pub fn open(path: &Path) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating datadir {}", path.display()))?;
        let lock_path = path.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                bail!("datadir {} is locked by another cairn node", path.display())
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the chain store lives.
    pub fn chain_path(&self) -> PathBuf {
        self.path.join("chain")
    }

    /// Writes a fresh random cookie with mode 0600 and returns the secret part.
    pub fn write_cookie(&self) -> anyhow::Result<String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| anyhow::anyhow!("no randomness for the RPC cookie: {e}"))?;
        let secret = hex::encode(secret);
        let path = cookie_path(&self.path);
        let _ = std::fs::remove_file(&path);
        write_private(&path, format!("{COOKIE_USER}:{secret}").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(secret)
    }

    /// Writes `node.json` atomically.
    pub fn write_node_info(&self, info: &NodeInfo) -> anyhow::Result<()> {
        Ok(info.write(&self.path)?)
    }

    /// Removes the files that only mean something while the node runs.
    pub fn remove_runtime_files(&self) {
        let _ = std::fs::remove_file(NodeInfo::path(&self.path));
        let _ = std::fs::remove_file(cookie_path(&self.path));
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_open_fails_with_the_locked_message() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let err = DataDir::open(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "datadir {} is locked by another cairn node",
                dir.path().display()
            )
        );
        drop(first);
        DataDir::open(dir.path()).unwrap();
    }

    #[test]
    fn cookie_is_private_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let datadir = DataDir::open(dir.path()).unwrap();
        let a = datadir.write_cookie().unwrap();
        let mode = std::fs::metadata(cookie_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = datadir.write_cookie().unwrap();
        assert_ne!(a, b);
        let text = std::fs::read_to_string(cookie_path(dir.path())).unwrap();
        assert_eq!(text, format!("__cookie__:{b}"));
    }
}
