//! The node's persistent p2p identity: an ed25519 keypair in `DATADIR/p2p_key`
//! (libp2p's protobuf key encoding, file mode 0600), created on first start.

use super::NetworkError;
use libp2p::identity::Keypair;
use std::path::{Path, PathBuf};

/// File name of the identity key inside the data directory.
pub const KEY_FILE: &str = "p2p_key";

/// Where the identity key of a data directory lives.
pub fn key_path(datadir: &Path) -> PathBuf {
    datadir.join(KEY_FILE)
}

/// Loads the keypair at `path`, or creates and stores a new one if the file is missing.
/// A file that exists but does not hold an ed25519 key is an error, never overwritten.
pub fn load_or_create(path: &Path) -> Result<Keypair, NetworkError> {
    let err = |reason: String| NetworkError::Key {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let key = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                err(format!(
                    "corrupt key file ({e}); move it away to create a new identity"
                ))
            })?;
            if key.key_type() != libp2p::identity::KeyType::Ed25519 {
                return Err(err(format!(
                    "expected an ed25519 key, found {:?}",
                    key.key_type()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| err(format!("no randomness for a new key: {e}")))?;
            let key =
                Keypair::ed25519_from_bytes(seed).expect("any 32 bytes are an ed25519 secret key");
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| err(format!("encoding the new key: {e}")))?;
            write_private(path, &bytes).map_err(|e| err(format!("writing the new key: {e}")))?;
            tracing::info!(peer_id = %key.public().to_peer_id(), path = %path.display(), "created a new p2p identity");
            Ok(key)
        }
        Err(e) => Err(err(format!("reading: {e}"))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let first = load_or_create(&path).unwrap();
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        std::fs::write(&path, b"garbage").unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("p2p_key") && e.contains("corrupt"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"garbage",
            "never overwritten"
        );
    }
}
