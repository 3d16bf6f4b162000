//! Bech32m addresses: a network's human-readable prefix over a [`PubkeyHash`].

use crate::keys::PubkeyHash;
use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};

/// Why a string is not an address of this network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not valid bech32m.
    #[error("invalid bech32m address {0:?}")]
    Invalid(String),
    /// Valid bech32m with the prefix of another network.
    #[error("address {address:?} has prefix {found:?}, this network uses {expected:?}")]
    WrongNetwork {
        /// The address given.
        address: String,
        /// Its prefix.
        found: String,
        /// This network's prefix.
        expected: String,
    },
    /// Wrong payload length.
    #[error("address {0:?} does not hold a 20-byte key hash")]
    BadLength(String),
}

/// Encodes a key hash as an address with prefix `hrp`.
pub fn encode_address(hrp: &str, hash: &PubkeyHash) -> String {
    let hrp = Hrp::parse(hrp).expect("the network's hrp is validated when chain parameters load");
    bech32::encode::<Bech32m>(hrp, &hash.0).expect("a 20-byte payload always fits in bech32m")
}

/// Whether `hrp` can serve as an address prefix.
pub fn is_valid_hrp(hrp: &str) -> bool {
    Hrp::parse(hrp).is_ok()
        && hrp
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Decodes an address, requiring bech32m (not bech32) and prefix `hrp`.
pub fn decode_address(hrp: &str, address: &str) -> Result<PubkeyHash, AddressError> {
    let checked = CheckedHrpstring::new::<Bech32m>(address)
        .map_err(|_| AddressError::Invalid(address.to_owned()))?;
    let found = checked.hrp().to_lowercase();
    if found != hrp {
        return Err(AddressError::WrongNetwork {
            address: address.to_owned(),
            found,
            expected: hrp.to_owned(),
        });
    }
    let bytes: Vec<u8> = checked.byte_iter().collect();
    let array: [u8; 20] = bytes
        .try_into()
        .map_err(|_| AddressError::BadLength(address.to_owned()))?;
    Ok(PubkeyHash(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_network_check() {
        let hash = PubkeyHash([7; 20]);
        let addr = encode_address("crt", &hash);
        assert!(addr.starts_with("crt1"));
        assert_eq!(decode_address("crt", &addr), Ok(hash));
        assert!(matches!(
            decode_address("tcrt", &addr),
            Err(AddressError::WrongNetwork { .. })
        ));
        let mut corrupted = addr.clone();
        corrupted.pop();
        corrupted.push(if addr.ends_with('q') { 'p' } else { 'q' });
        assert!(matches!(
            decode_address("crt", &corrupted),
            Err(AddressError::Invalid(_))
        ));
    }

    #[test]
    fn bech32_non_m_is_rejected() {
        let hrp = Hrp::parse("crt").unwrap();
        let legacy = bech32::encode::<bech32::Bech32>(hrp, &[7; 20]).unwrap();
        assert!(decode_address("crt", &legacy).is_err());
    }
}
