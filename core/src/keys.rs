//! secp256k1 keys and ECDSA signatures (k256), low-S only.

use crate::hash::{Hash256, sha256};
use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh;
use std::fmt;

/// A compressed SEC1 public key (33 bytes).
pub type PublicKeyBytes = [u8; 33];
/// A compact `r || s` ECDSA signature (64 bytes).
pub type SignatureBytes = [u8; 64];

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a valid compressed secp256k1 point.
    #[error("invalid public key encoding")]
    BadPublicKey,
    /// `r` or `s` out of range.
    #[error("invalid signature encoding")]
    BadEncoding,
    /// `s` in the upper half of the order: the malleable twin of a valid signature.
    #[error("signature has a high S value (only low-S signatures are standard and valid)")]
    HighS,
    /// The signature does not match key and message.
    #[error("signature does not verify")]
    Invalid,
}

/// Hash of a public key that outputs pay to: the first 20 bytes of SHA-256(compressed key).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode,
)]
pub struct PubkeyHash(pub [u8; 20]);

impl PubkeyHash {
    /// The hash of a compressed public key.
    pub fn of(public_key: &PublicKeyBytes) -> Self {
        let digest = sha256(public_key);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[..20]);
        PubkeyHash(out)
    }
}

impl fmt::Debug for PubkeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubkeyHash({})", hex::encode(self.0))
    }
}

/// A secret key able to sign sighashes.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// Error parsing a secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret key: must be 32 bytes, non-zero and below the curve order")]
pub struct InvalidSecretKey;

impl SecretKey {
    /// From 32 big-endian bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, InvalidSecretKey> {
        SigningKey::from_slice(bytes)
            .map(SecretKey)
            .map_err(|_| InvalidSecretKey)
    }

    /// From 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, InvalidSecretKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| InvalidSecretKey)?;
        Self::from_bytes(&bytes)
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.to_bytes());
        out
    }

    /// The compressed public key.
    pub fn public_key(&self) -> PublicKeyBytes {
        let point = self.0.verifying_key().to_sec1_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The hash outputs pay to for this key.
    pub fn pubkey_hash(&self) -> PubkeyHash {
        PubkeyHash::of(&self.public_key())
    }

    /// Signs a 32-byte sighash; the result is always low-S (RFC 6979 deterministic nonce).
    pub fn sign_hash(&self, sighash: &Hash256) -> SignatureBytes {
        let sig: Signature = self
            .0
            .sign_prehash(&sighash.0)
            .expect("signing a 32-byte prehash with a valid key cannot fail");
        let sig = sig.normalize_s();
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        out
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Verifies a low-S ECDSA signature over a 32-byte sighash.
pub fn verify_signature(
    public_key: &PublicKeyBytes,
    sighash: &Hash256,
    signature: &SignatureBytes,
) -> Result<(), SignatureError> {
    let key =
        VerifyingKey::from_sec1_bytes(public_key).map_err(|_| SignatureError::BadPublicKey)?;
    let sig = Signature::from_slice(signature).map_err(|_| SignatureError::BadEncoding)?;
    if bool::from(sig.s().is_high()) {
        return Err(SignatureError::HighS);
    }
    key.verify_prehash(&sighash.0, &sig)
        .map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256d;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32]).unwrap()
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key(7);
        let msg = sha256d(b"message");
        let sig = k.sign_hash(&msg);
        assert_eq!(verify_signature(&k.public_key(), &msg, &sig), Ok(()));
        assert_eq!(
            verify_signature(&k.public_key(), &sha256d(b"other"), &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_signature(&key(8).public_key(), &msg, &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn high_s_twin_is_rejected() {
        let k = key(9);
        let msg = sha256d(b"malleate me");
        let sig = k.sign_hash(&msg);
        let parsed = Signature::from_slice(&sig).unwrap();
        // s' = n - s is the same signature mathematically, but malleable: refuse it.
        let high =
            Signature::from_scalars(parsed.r().to_bytes(), (-*parsed.s()).to_bytes()).unwrap();
        let mut high_bytes = [0u8; 64];
        high_bytes.copy_from_slice(&high.to_bytes());
        assert_eq!(
            verify_signature(&k.public_key(), &msg, &high_bytes),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn malformed_keys_and_signatures_are_errors() {
        let msg = sha256d(b"x");
        assert_eq!(
            verify_signature(&[0u8; 33], &msg, &[1u8; 64]),
            Err(SignatureError::BadPublicKey)
        );
        assert_eq!(
            verify_signature(&key(1).public_key(), &msg, &[0u8; 64]),
            Err(SignatureError::BadEncoding)
        );
        assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
        assert!(SecretKey::from_bytes(&[0xff; 32]).is_err());
        assert!(SecretKey::from_hex("00").is_err());
    }
}
