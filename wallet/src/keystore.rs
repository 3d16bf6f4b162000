//! The wallet file: keys encrypted at rest, written atomically.
//!
//! The file is JSON. Its header is readable (format, version, network, KDF parameters); the
//! payload ([`WalletData`]: secret keys and the record of sent transactions) is encrypted
//! with ChaCha20-Poly1305 under a key derived from the passphrase with Argon2id:
//!
//! ```json
//! { "format": "cairn-wallet", "version": 1, "network_id": "cairn-devnet",
//!   "encryption": { "kdf": { "algorithm": "argon2id", "version": 19, "m_cost_kib": 19456,
//!                            "t_cost": 2, "p_cost": 1, "salt": "…" },
//!                   "cipher": "chacha20poly1305", "nonce": "…", "key_check": "…" },
//!   "ciphertext": "…" }
//! ```
//!
//! The header is the AEAD's associated data, so it cannot be altered without detection.
//! `key_check` is a hash of a second half of the KDF output: it tells a wrong passphrase
//! apart from a damaged ciphertext without making guessing any cheaper (each guess still
//! costs one Argon2id run). A plaintext wallet (development keys only) carries a
//! `"WARNING"` member and the payload in the clear under `"wallet"`.
//!
//! Every write goes to a temporary file in the same directory, is fsynced, renamed over the
//! old file and the directory fsynced ([`write_atomic`]): after a crash the file is the old
//! one or the new one, never a mix. [`WalletLock`] serialises processes that modify one
//! wallet, so two commands cannot both add a key and lose one of them.

use cairn_core::hash::sha256;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The `format` member of every wallet file.
pub const FORMAT: &str = "cairn-wallet";
/// The file format version this code writes and reads.
pub const VERSION: u32 = 1;
/// The warning a plaintext wallet carries.
pub const PLAINTEXT_WARNING: &str = "INSECURE PLAINTEXT WALLET: the secret keys below are not encrypted. \
     Use only for development keys (cairn wallet --insecure-plaintext).";

const KDF_ALGORITHM: &str = "argon2id";
const CIPHER: &str = "chacha20poly1305";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const CHECK_LEN: usize = 16;
const KEY_CHECK_TAG: &[u8] = b"cairn-wallet/key-check/v1";

/// Argon2id cost parameters, recorded in the file they encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id setting: 19 MiB, 2 passes, 1 lane.
    pub const OWASP: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// A cheap setting for tests only (the file still records it, so it opens anywhere).
    pub const INSECURE_FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    /// Rejects settings no sane writer produces, so a crafted file cannot make opening it
    /// allocate gigabytes or run for hours.
    fn check(&self) -> Result<(), String> {
        if !(1..=16).contains(&self.p_cost) {
            return Err(format!("p_cost {} outside 1..=16", self.p_cost));
        }
        if !(1..=64).contains(&self.t_cost) {
            return Err(format!("t_cost {} outside 1..=64", self.t_cost));
        }
        let min_m = 8 * self.p_cost;
        if !(min_m..=4 * 1024 * 1024).contains(&self.m_cost_kib) {
            return Err(format!(
                "m_cost_kib {} outside {min_m}..=4194304",
                self.m_cost_kib
            ));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::OWASP
    }
}

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// Made by `new`: an address to hand out.
    Receive,
    /// Made while sending: receives the change.
    Change,
    /// A genesis dev account of the network (its key is public).
    Dev,
}

impl KeyKind {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyKind::Receive => "receive",
            KeyKind::Change => "change",
            KeyKind::Dev => "dev",
        }
    }
}

/// One stored key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The 32-byte secret key as hex.
    pub secret_key_hex: String,
    /// What it is for.
    pub kind: KeyKind,
    /// A name (`dev3`, `change`, …).
    #[serde(default)]
    pub label: String,
    /// When it was added, in Unix seconds.
    #[serde(default)]
    pub created_at: u64,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        self.secret_key_hex.zeroize();
    }
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// What kind of transaction a [`SentRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentKind {
    /// `send`.
    Payment,
    /// The first transaction of `double-spend`.
    DoubleSpendFirst,
    /// The second transaction of `double-spend`.
    DoubleSpendSecond,
}

/// A transaction this wallet submitted, and what the node answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// Its txid (display hex).
    pub txid: String,
    /// When it was submitted, Unix seconds.
    pub time: u64,
    /// Why it was made.
    pub kind: SentKind,
    /// Recipient address.
    pub to: String,
    /// Amount paid to the recipient.
    pub amount: u64,
    /// Fee paid.
    pub fee: u64,
    /// Encoded size in bytes.
    pub size: usize,
    /// Spent outpoints, `txid:vout`.
    pub inputs: Vec<String>,
    /// Change address and amount, if any.
    #[serde(default)]
    pub change: Option<(String, u64)>,
    /// The node it was submitted to.
    pub node: String,
    /// Whether that node accepted it.
    pub accepted: bool,
    /// The node's answer: the txid, or the error.
    pub answer: String,
    /// The raw transaction hex, to rebroadcast or inspect.
    pub hex: String,
}

/// The (encrypted) payload of a wallet file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletData {
    /// Every key, oldest first.
    pub keys: Vec<StoredKey>,
    /// Transactions submitted, oldest first.
    #[serde(default)]
    pub sent: Vec<SentRecord>,
}

/// Why the wallet file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// There is no file.
    #[error(
        "no wallet at {}: create one with `cairn wallet new` or `cairn wallet import-dev N`",
        .0.display()
    )]
    NotFound(PathBuf),
    /// Reading or writing failed.
    #[error("wallet file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Not a wallet file, or damaged.
    #[error("wallet file {} is corrupted or not a cairn wallet: {reason}", path.display())]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer version.
    #[error("wallet file {} has format version {version}; this cairn reads version {VERSION}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The passphrase does not open the file.
    #[error("wrong passphrase for wallet {}", .0.display())]
    WrongPassphrase(PathBuf),
    /// The file is encrypted and no passphrase was given.
    #[error("wallet {} is encrypted and needs a passphrase", .0.display())]
    PassphraseRequired(PathBuf),
    /// An encrypted wallet with an empty passphrase would be plaintext in disguise.
    #[error(
        "the passphrase is empty: choose one, or use --insecure-plaintext for development keys"
    )]
    EmptyPassphrase,
    /// The KDF parameters are unusable.
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

fn corrupted(path: &Path, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::Corrupted {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Fills `buf` from the operating system's random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::fill(buf).map_err(|e| KeystoreError::Random(e.to_string()))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    version: u32,
    network_id: String,
    #[serde(rename = "WARNING", default, skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<EncryptionHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wallet: Option<WalletData>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionHeader {
    kdf: KdfHeader,
    cipher: String,
    nonce: String,
    key_check: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfHeader {
    algorithm: String,
    version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// The passphrase-derived key of an encrypted wallet, kept to re-encrypt on save.
struct DerivedKey {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
    check: [u8; CHECK_LEN],
}

impl DerivedKey {
    fn derive(
        passphrase: &str,
        params: KdfParams,
        salt: [u8; SALT_LEN],
    ) -> Result<DerivedKey, KeystoreError> {
        params.check().map_err(KeystoreError::Kdf)?;
        let argon_params =
            argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(64))
                .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut out = Zeroizing::new([0u8; 64]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
            .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&out[..32]);
        let mut tagged = Zeroizing::new(Vec::with_capacity(KEY_CHECK_TAG.len() + 32));
        tagged.extend_from_slice(KEY_CHECK_TAG);
        tagged.extend_from_slice(&out[32..]);
        let mut check = [0u8; CHECK_LEN];
        check.copy_from_slice(&sha256(&tagged)[..CHECK_LEN]);
        Ok(DerivedKey {
            params,
            salt,
            key,
            check,
        })
    }

    fn header(&self, nonce: &[u8; NONCE_LEN]) -> EncryptionHeader {
        EncryptionHeader {
            kdf: KdfHeader {
                algorithm: KDF_ALGORITHM.into(),
                version: 0x13,
                m_cost_kib: self.params.m_cost_kib,
                t_cost: self.params.t_cost,
                p_cost: self.params.p_cost,
                salt: hex::encode(self.salt),
            },
            cipher: CIPHER.into(),
            nonce: hex::encode(nonce),
            key_check: hex::encode(self.check),
        }
    }
}

/// The associated data of the AEAD: everything in the header but the nonce (which the
/// cipher already binds).
fn associated_data(network_id: &str, header: &EncryptionHeader) -> Vec<u8> {
    let k = &header.kdf;
    format!(
        "{FORMAT}/{VERSION}/{network_id}/{}/{}/{}/{}/{}/{}/{}/{}",
        k.algorithm,
        k.version,
        k.m_cost_kib,
        k.t_cost,
        k.p_cost,
        k.salt,
        header.cipher,
        header.key_check
    )
    .into_bytes()
}

/// A parsed wallet file, not yet decrypted.
#[derive(Debug)]
pub struct WalletFile {
    path: PathBuf,
    envelope: Envelope,
}

impl WalletFile {
    /// Whether `path` holds a file (of any content).
    pub fn exists(path: &Path) -> bool {
        path.is_file()
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<WalletFile, KeystoreError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeystoreError::NotFound(path.to_path_buf()));
            }
            Err(source) => {
                return Err(KeystoreError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        WalletFile::parse(path, &text)
    }

    /// Parses file content `bytes` read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<WalletFile, KeystoreError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| corrupted(path, format!("not valid JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(corrupted(
                path,
                format!("no \"format\": \"{FORMAT}\" member"),
            ));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(KeystoreError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    version: u32::try_from(v).unwrap_or(u32::MAX),
                });
            }
            None => return Err(corrupted(path, "no \"version\" member")),
        }
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| corrupted(path, e.to_string()))?;
        match (&envelope.encryption, &envelope.ciphertext, &envelope.wallet) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => {
                return Err(corrupted(
                    path,
                    "expected either \"encryption\" and \"ciphertext\", or a plaintext \"wallet\"",
                ));
            }
        }
        Ok(WalletFile {
            path: path.to_path_buf(),
            envelope,
        })
    }

    /// Whether opening needs a passphrase.
    pub fn is_encrypted(&self) -> bool {
        self.envelope.encryption.is_some()
    }

    /// The network the wallet was made for.
    pub fn network_id(&self) -> &str {
        &self.envelope.network_id
    }

    /// The KDF parameters, if encrypted.
    pub fn kdf_params(&self) -> Option<KdfParams> {
        self.envelope.encryption.as_ref().map(|e| KdfParams {
            m_cost_kib: e.kdf.m_cost_kib,
            t_cost: e.kdf.t_cost,
            p_cost: e.kdf.p_cost,
        })
    }

    /// Decrypts the payload. `passphrase` is ignored for a plaintext wallet.
    pub fn unlock(self, passphrase: Option<&str>) -> Result<(Keystore, WalletData), KeystoreError> {
        let path = self.path;
        let network_id = self.envelope.network_id;
        let (Some(header), Some(ciphertext)) = (self.envelope.encryption, self.envelope.ciphertext)
        else {
            let data = self
                .envelope
                .wallet
                .expect("parse checked that a file without encryption has a plaintext wallet");
            let keystore = Keystore {
                path,
                network_id,
                protection: Protection::Plaintext,
            };
            return Ok((keystore, data));
        };
        let passphrase =
            passphrase.ok_or_else(|| KeystoreError::PassphraseRequired(path.clone()))?;
        if header.kdf.algorithm != KDF_ALGORITHM || header.kdf.version != 0x13 {
            return Err(corrupted(
                &path,
                format!(
                    "unknown key derivation {} version {}",
                    header.kdf.algorithm, header.kdf.version
                ),
            ));
        }
        if header.cipher != CIPHER {
            return Err(corrupted(
                &path,
                format!("unknown cipher {}", header.cipher),
            ));
        }
        let salt: [u8; SALT_LEN] = decode_fixed(&path, "salt", &header.kdf.salt)?;
        let nonce: [u8; NONCE_LEN] = decode_fixed(&path, "nonce", &header.nonce)?;
        let check: [u8; CHECK_LEN] = decode_fixed(&path, "key_check", &header.key_check)?;
        let ciphertext =
            hex::decode(&ciphertext).map_err(|e| corrupted(&path, format!("ciphertext: {e}")))?;
        let params = KdfParams {
            m_cost_kib: header.kdf.m_cost_kib,
            t_cost: header.kdf.t_cost,
            p_cost: header.kdf.p_cost,
        };
        params
            .check()
            .map_err(|reason| corrupted(&path, format!("key derivation parameters: {reason}")))?;
        let derived = DerivedKey::derive(passphrase, params, salt)?;
        if derived.check != check {
            return Err(KeystoreError::WrongPassphrase(path));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(derived.key.as_ref()));
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &associated_data(&network_id, &header),
                    },
                )
                .map_err(|_| {
                    corrupted(
                        &path,
                        "the passphrase is right but the encrypted data fails authentication",
                    )
                })?,
        );
        let data: WalletData = serde_json::from_slice(&plaintext)
            .map_err(|e| corrupted(&path, format!("decrypted payload: {e}")))?;
        let keystore = Keystore {
            path,
            network_id,
            protection: Protection::Encrypted(Box::new(derived)),
        };
        Ok((keystore, data))
    }
}

fn decode_fixed<const N: usize>(
    path: &Path,
    what: &str,
    hex_str: &str,
) -> Result<[u8; N], KeystoreError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_str, &mut out)
        .map_err(|_| corrupted(path, format!("{what} is not {N} bytes of hex")))?;
    Ok(out)
}

enum Protection {
    Plaintext,
    Encrypted(Box<DerivedKey>),
}

/// An opened wallet file: where it lives and how to encrypt it again.
pub struct Keystore {
    path: PathBuf,
    network_id: String,
    protection: Protection,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("network_id", &self.network_id)
            .field("encrypted", &self.is_encrypted())
            .finish()
    }
}

impl Keystore {
    /// A new encrypted wallet file at `path` (written by the first [`Keystore::save`]).
    pub fn create_encrypted(
        path: &Path,
        network_id: &str,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<Keystore, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let derived = DerivedKey::derive(passphrase, params, salt)?;
        Ok(Keystore {
            path: path.to_path_buf(),
            network_id: network_id.to_owned(),
            protection: Protection::Encrypted(Box::new(derived)),
        })
    }

    /// A new plaintext wallet file at `path`: development keys only.
    pub fn create_plaintext(path: &Path, network_id: &str) -> Keystore {
        Keystore {
            path: path.to_path_buf(),
            network_id: network_id.to_owned(),
            protection: Protection::Plaintext,
        }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network the wallet is for.
    pub fn network_id(&self) -> &str {
        &self.network_id
    }

    /// Whether the file is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.protection, Protection::Encrypted(_))
    }

    /// The file content for `data`: encrypted under a fresh nonce, or plaintext.
    pub fn seal(&self, data: &WalletData) -> Result<Vec<u8>, KeystoreError> {
        let envelope = match &self.protection {
            Protection::Plaintext => Envelope {
                format: FORMAT.into(),
                version: VERSION,
                network_id: self.network_id.clone(),
                warning: Some(PLAINTEXT_WARNING.into()),
                encryption: None,
                ciphertext: None,
                wallet: Some(data.clone()),
            },
            Protection::Encrypted(derived) => {
                let mut nonce = [0u8; NONCE_LEN];
                random_bytes(&mut nonce)?;
                let header = derived.header(&nonce);
                let plaintext = Zeroizing::new(
                    serde_json::to_vec(data).expect("wallet data always serialises"),
                );
                let cipher = ChaCha20Poly1305::new(Key::from_slice(derived.key.as_ref()));
                let ciphertext = cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &plaintext,
                            aad: &associated_data(&self.network_id, &header),
                        },
                    )
                    .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
                Envelope {
                    format: FORMAT.into(),
                    version: VERSION,
                    network_id: self.network_id.clone(),
                    warning: None,
                    encryption: Some(header),
                    ciphertext: Some(hex::encode(ciphertext)),
                    wallet: None,
                }
            }
        };
        let mut bytes =
            serde_json::to_vec_pretty(&envelope).expect("the envelope always serialises");
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes `data` to the file atomically (creating its directory if needed).
    pub fn save(&self, data: &WalletData) -> Result<(), KeystoreError> {
        let bytes = Zeroizing::new(self.seal(data)?);
        let io_err = |source| KeystoreError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        write_atomic(&self.path, &bytes).map_err(io_err)
    }
}

/// Replaces the file at `path` with `bytes` atomically: temporary file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [`write_atomic`] with the content written by `write`. If `write` fails, the old file is
/// untouched and the temporary file removed.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        hex::encode(suffix)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    let written = write(&mut file).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An exclusive lock on a wallet, held by a command that modifies it; released on drop.
#[derive(Debug)]
pub struct WalletLock {
    _file: File,
}

impl WalletLock {
    /// The lock file of the wallet at `path` (`PATH.lock`).
    pub fn path_for(wallet: &Path) -> PathBuf {
        let mut name = wallet.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock, waiting for another process holding it. `on_wait` runs once if the
    /// lock is busy, before waiting.
    pub fn acquire(wallet: &Path, on_wait: impl FnOnce()) -> Result<WalletLock, KeystoreError> {
        let path = WalletLock::path_for(wallet);
        let io_err = |source| KeystoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(io_err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        Ok(WalletLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WalletData {
        WalletData {
            keys: vec![StoredKey {
                secret_key_hex: "11".repeat(32),
                kind: KeyKind::Receive,
                label: "first".into(),
                created_at: 1,
            }],
            sent: vec![],
        }
    }

    fn encrypted(path: &Path, passphrase: &str) -> Keystore {
        Keystore::create_encrypted(path, "cairn-devnet", passphrase, KdfParams::INSECURE_FAST)
            .unwrap()
    }

    #[test]
    fn encrypted_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        encrypted(&path, "correct horse").save(&sample()).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&"11".repeat(32)), "secret leaked:\n{text}");
        assert!(text.contains("argon2id"));

        let file = WalletFile::read(&path).unwrap();
        assert!(file.is_encrypted());
        assert_eq!(file.network_id(), "cairn-devnet");
        assert_eq!(file.kdf_params(), Some(KdfParams::INSECURE_FAST));
        let (keystore, data) = file.unlock(Some("correct horse")).unwrap();
        assert_eq!(data, sample());
        assert!(keystore.is_encrypted());

        // Saving again reuses the derived key under a fresh nonce.
        let mut more = data.clone();
        more.keys[0].label = "renamed".into();
        keystore.save(&more).unwrap();
        let (_, reread) = WalletFile::read(&path)
            .unwrap()
            .unlock(Some("correct horse"))
            .unwrap();
        assert_eq!(reread, more);
    }

    #[test]
    fn default_params_are_owasp_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        Keystore::create_encrypted(&path, "net", "pw", KdfParams::default())
            .unwrap()
            .save(&sample())
            .unwrap();
        let file = WalletFile::read(&path).unwrap();
        assert_eq!(file.kdf_params(), Some(KdfParams::OWASP));
        assert_eq!(file.unlock(Some("pw")).unwrap().1, sample());
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        encrypted(&path, "right").save(&sample()).unwrap();
        let err = WalletFile::read(&path)
            .unwrap()
            .unlock(Some("wrong"))
            .unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassphrase(_)), "{err:?}");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let err = WalletFile::read(&path).unwrap().unlock(None).unwrap_err();
        assert!(matches!(err, KeystoreError::PassphraseRequired(_)));
    }

    #[test]
    fn empty_passphrase_is_refused() {
        let err =
            Keystore::create_encrypted(Path::new("w.json"), "net", "", KdfParams::INSECURE_FAST)
                .unwrap_err();
        assert!(matches!(err, KeystoreError::EmptyPassphrase));
    }

    #[test]
    fn corrupted_files_are_clear_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        encrypted(&path, "pw").save(&sample()).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();

        // Truncated mid-write (what atomic writes prevent), garbage, another JSON document.
        for bad in [
            &good[..good.len() / 2],
            "\u{0}\u{1}garbage",
            "{\"hello\": 1}",
            "",
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = WalletFile::read(&path).unwrap_err();
            assert!(matches!(err, KeystoreError::Corrupted { .. }), "{err:?}");
            assert!(err.to_string().contains("corrupted"), "{err}");
        }

        // A flipped ciphertext byte: the passphrase checks out but authentication fails.
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        let ct = value["ciphertext"].as_str().unwrap().to_owned();
        let flipped = format!("{}{}", if &ct[..1] == "0" { "1" } else { "0" }, &ct[1..]);
        value["ciphertext"] = flipped.into();
        std::fs::write(&path, value.to_string()).unwrap();
        let err = WalletFile::read(&path)
            .unwrap()
            .unlock(Some("pw"))
            .unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupted { .. }), "{err:?}");

        // A tampered header (the network) is caught by the associated data.
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        value["network_id"] = "other-net".into();
        std::fs::write(&path, value.to_string()).unwrap();
        let err = WalletFile::read(&path)
            .unwrap()
            .unlock(Some("pw"))
            .unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupted { .. }), "{err:?}");

        // Absurd KDF costs are refused before running the KDF.
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        value["encryption"]["kdf"]["m_cost_kib"] = u32::MAX.into();
        std::fs::write(&path, value.to_string()).unwrap();
        let err = WalletFile::read(&path)
            .unwrap()
            .unlock(Some("pw"))
            .unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupted { .. }), "{err:?}");

        // A future version is named as such.
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        value["version"] = 99.into();
        std::fs::write(&path, value.to_string()).unwrap();
        assert!(matches!(
            WalletFile::read(&path).unwrap_err(),
            KeystoreError::UnsupportedVersion { version: 99, .. }
        ));
    }

    #[test]
    fn missing_file_says_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = WalletFile::read(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(err, KeystoreError::NotFound(_)));
        assert!(err.to_string().contains("cairn wallet new"), "{err}");
    }

    #[test]
    fn plaintext_wallet_is_marked_and_opens_without_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.json");
        Keystore::create_plaintext(&path, "cairn-devnet")
            .save(&sample())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("INSECURE PLAINTEXT WALLET"));
        let file = WalletFile::read(&path).unwrap();
        assert!(!file.is_encrypted());
        let (keystore, data) = file.unlock(None).unwrap();
        assert!(!keystore.is_encrypted());
        assert_eq!(data, sample());
    }

    #[test]
    fn failed_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        write_atomic(&path, b"old content").unwrap();

        let err = write_atomic_with(&path, |file| {
            file.write_all(b"new cont")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old content");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("wallet.json")]);

        write_atomic(&path, b"new content").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
    }

    #[cfg(unix)]
    #[test]
    fn wallet_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("wallet.json");
        encrypted(&path, "pw").save(&sample()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        let held = WalletLock::acquire(&path, || panic!("first lock must not wait")).unwrap();
        let probe = OpenOptions::new()
            .write(true)
            .open(WalletLock::path_for(&path))
            .unwrap();
        assert!(matches!(
            probe.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(probe.try_lock().is_ok());
    }
}
