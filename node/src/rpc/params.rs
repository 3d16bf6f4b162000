//! Positional parameters, parsed in one place: every method's params struct implements
//! [`FromArgs`] with the helpers of [`Args`], so each message names the method and the
//! parameter, and each failure has INTERFACE's code (-32602 invalid params, -22 undecodable,
//! -8 out of range).

use super::{RpcError, codes};
use cairn_core::chain::ChainError;
use cairn_core::encoding;
use cairn_core::{BlockHash, ChainParams, PubkeyHash, Txid};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A method's positional parameters, with the method's name for messages.
#[derive(Debug, Clone)]
pub struct Args {
    /// The method called.
    pub method: &'static str,
    /// The parameters as sent.
    pub list: Vec<Value>,
}

/// A method's typed parameters.
pub trait FromArgs: Sized {
    /// How many positional parameters the method takes at most.
    const MAX: usize;

    /// Reads the parameters (their count is already checked).
    fn parse(args: &Args) -> Result<Self, RpcError>;

    /// Checks the count, then reads the parameters.
    fn from_args(args: &Args) -> Result<Self, RpcError> {
        args.at_most(Self::MAX)?;
        Self::parse(args)
    }
}

/// The parameters of a method that takes none.
#[derive(Debug, Clone, Copy)]
pub struct NoParams;

impl FromArgs for NoParams {
    const MAX: usize = 0;
    fn parse(_: &Args) -> Result<Self, RpcError> {
        Ok(NoParams)
    }
}

/// The parameters of a method that takes one address.
#[derive(Debug, Clone)]
pub struct AddressArg(pub String);

impl FromArgs for AddressArg {
    const MAX: usize = 1;
    fn parse(args: &Args) -> Result<Self, RpcError> {
        Ok(AddressArg(args.required(0, "address")?))
    }
}

impl Args {
    /// The parameter at `index`, absent or null counting as missing.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.list.get(index).filter(|v| !v.is_null())
    }

    /// A required parameter of type `T`.
    pub fn required<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        match self.get(index) {
            None => Err(RpcError::invalid_params(format!(
                "{}: missing required parameter {} ({name})",
                self.method,
                index + 1
            ))),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                RpcError::invalid_params(format!(
                    "{}: parameter {} ({name}): {e}",
                    self.method,
                    index + 1
                ))
            }),
        }
    }

    /// An optional parameter of type `T` (absent or null: `None`).
    pub fn optional<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, RpcError> {
        match self.get(index) {
            None => Ok(None),
            Some(_) => self.required(index, name).map(Some),
        }
    }

    /// Fails when more than `n` parameters were given.
    pub fn at_most(&self, n: usize) -> Result<(), RpcError> {
        if self.list.len() > n {
            return Err(RpcError::invalid_params(format!(
                "{} takes at most {n} parameters, {} given",
                self.method,
                self.list.len()
            )));
        }
        Ok(())
    }

    /// A block hash (64 hex characters, display order).
    pub fn hash(&self, index: usize, name: &str) -> Result<BlockHash, RpcError> {
        let s: String = self.required(index, name)?;
        s.parse().map_err(|_| {
            RpcError::invalid_params(format!("{}: {name} must be 64 hex characters", self.method))
        })
    }

    /// A txid (64 hex characters, display order).
    pub fn txid(&self, index: usize) -> Result<Txid, RpcError> {
        let s: String = self.required(index, "txid")?;
        s.parse().map_err(|_| {
            RpcError::invalid_params(format!("{}: txid must be 64 hex characters", self.method))
        })
    }

    /// A verbosity given as a bool or an integer.
    pub fn verbosity(&self, index: usize, default: u64) -> Result<u64, RpcError> {
        match self.get(index) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(u64::from(*b)),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(default)),
            Some(_) => Err(RpcError::invalid_params(format!(
                "{}: verbosity must be a boolean or 0/1/2",
                self.method
            ))),
        }
    }

    /// A string that must be present and a JSON string (null included is refused), as the
    /// network methods have always read theirs.
    pub fn string(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        match self.list.get(index) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(RpcError::invalid_params(format!(
                "{}: {name} must be a string, not {other}",
                self.method
            ))),
            None => Err(RpcError::invalid_params(format!(
                "{}: missing parameter {name}",
                self.method
            ))),
        }
    }

    /// A raw transaction or block: hex of Cairn's encoding (-22 when it does not decode).
    pub fn decoded<T: bincode::Decode<()>>(
        &self,
        index: usize,
        name: &str,
        what: &str,
    ) -> Result<T, RpcError> {
        let hex_str: String = self.required(index, name)?;
        decode_hex(&hex_str, what)
    }
}

/// Decodes hex of Cairn's canonical encoding; `what` names it in the -22 message.
pub fn decode_hex<T: bincode::Decode<()>>(hex_str: &str, what: &str) -> Result<T, RpcError> {
    let bytes = hex::decode(hex_str.trim()).map_err(|e| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            format!("{what} decode failed: not hex: {e}"),
        )
    })?;
    encoding::decode(&bytes).map_err(|e| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            format!("{what} decode failed: {e}"),
        )
    })
}

/// An address on this node's network (-5 when it is not one).
pub fn address(params: &ChainParams, address: &str) -> Result<PubkeyHash, RpcError> {
    params.parse_address(address).map_err(|e| {
        RpcError::new(
            codes::INVALID_ADDRESS_OR_KEY,
            format!("Invalid address: {e}"),
        )
    })
}

/// A failure that is the node's, not the caller's (-32603).
pub fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(codes::INTERNAL_ERROR, e.to_string())
}

/// A chain error of `invalidateblock`/`reconsiderblock`: unknown block -5, genesis -8.
pub fn chain_err(e: ChainError) -> RpcError {
    match e {
        ChainError::UnknownBlock(_) => {
            RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
        }
        ChainError::Genesis => RpcError::new(codes::INVALID_PARAMETER, e.to_string()),
        other => internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: Value) -> Args {
        Args {
            method: "m",
            list: list.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn messages_name_the_method_and_the_parameter() {
        let e = args(json!([])).required::<u32>(0, "height").unwrap_err();
        assert_eq!(e.code, codes::INVALID_PARAMS);
        assert_eq!(e.message, "m: missing required parameter 1 (height)");
        let e = args(json!(["x"])).required::<u32>(0, "height").unwrap_err();
        assert!(
            e.message.starts_with("m: parameter 1 (height): "),
            "{}",
            e.message
        );
        let e = args(json!([1, 2])).at_most(1).unwrap_err();
        assert_eq!(e.message, "m takes at most 1 parameters, 2 given");
        let e = args(json!([null])).string(0, "node").unwrap_err();
        assert_eq!(e.message, "m: node must be a string, not null");
        assert_eq!(
            args(json!([])).string(0, "node").unwrap_err().message,
            "m: missing parameter node"
        );
    }

    #[test]
    fn verbosity_takes_bools_and_small_integers() {
        assert_eq!(args(json!([])).verbosity(0, 1).unwrap(), 1);
        assert_eq!(args(json!([null])).verbosity(0, 1).unwrap(), 1);
        assert_eq!(args(json!([true])).verbosity(0, 0).unwrap(), 1);
        assert_eq!(args(json!([2])).verbosity(0, 0).unwrap(), 2);
        assert_eq!(
            args(json!(["2"])).verbosity(0, 0).unwrap_err().code,
            codes::INVALID_PARAMS
        );
    }

    #[test]
    fn undecodable_hex_is_minus_22() {
        let e = decode_hex::<cairn_core::Transaction>("zz", "TX").unwrap_err();
        assert_eq!(e.code, codes::DESERIALIZATION_ERROR);
        assert!(e.message.starts_with("TX decode failed: not hex"));
        let e = decode_hex::<cairn_core::Transaction>("00", "TX").unwrap_err();
        assert_eq!(e.code, codes::DESERIALIZATION_ERROR);
    }
}
