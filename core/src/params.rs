//! Chain parameters: the one source of every consensus constant.
//!
//! A network is defined by a `genesis.json` (see the repository root for the dev network).
//! [`ChainParams::from_json`] validates it and derives the genesis block from it, so two
//! nodes with the same file agree on the genesis hash without anything being mined.

use crate::address::{decode_address, encode_address, is_valid_hrp};
use crate::amount::Amount;
use crate::block::{Block, BlockHeader};
use crate::hash::{BlockHash, Hash256, sha256, sha256d};
use crate::keys::{PubkeyHash, SecretKey};
use crate::merkle::merkle_root;
use crate::pow::{CompactTarget, Target};
use crate::tx::{MAX_TX_DATA, Transaction, TxOut};
use serde::{Deserialize, Serialize};

/// The dev network's `genesis.json`, embedded so `cairn` runs without the file at hand.
pub const DEVNET_GENESIS_JSON: &str = include_str!("../../genesis.json");

/// How many past blocks the median-time-past rule looks at (Bitcoin's 11).
pub const MEDIAN_TIME_SPAN: usize = 11;

/// The largest `max_block_size` a network may set: keeps every block under the
/// decoder's hard limit ([`crate::encoding::MAX_ENCODED_SIZE`]).
pub const MAX_BLOCK_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// Bitcoin's values of the two time bounds (BIP54's grace and the two-hour future limit),
/// the defaults of a `genesis.json` that omits them. They fit Bitcoin's two-week window; a
/// network that retargets faster must set smaller ones (see [`TIME_BOUND_DIVISOR`]).
const BITCOIN_TIME_BOUND_SECS: u32 = 2 * 60 * 60;

/// A retargeting network's `timewarp_grace_secs` and `max_future_block_time_secs` may each
/// be at most this fraction (1/4) of the window's expected timespan.
///
/// A majority miner stamps every window's last block as far ahead as the future limit
/// allows and the next window's first block as far back as the grace allows: each window
/// then measures `grace` more than it took, and the first one also `future limit` more.
/// With both bounds far above the expected timespan (7200 s against the dev network's
/// 295 s) every window measures more than four times the expected timespan, so every
/// retarget takes the full ×4 step down and the difficulty collapses to the limit within a
/// few windows. Within a quarter, a sustained attack settles at blocks about 4/3 as fast as
/// the target (the window's measured span is `real + grace`), and the one-off step is
/// bounded too. Bitcoin's ratio is 7200 s against 1,209,600 s.
pub const TIME_BOUND_DIVISOR: u64 = 4;

/// The future limit of [`ChainParams::regtest`]: instantly generated blocks run ahead of the
/// clock by one second per six blocks (each must be after the median of the last eleven), so
/// thousands of them need Bitcoin's two hours; without retargeting there is no difficulty
/// for a timewarp to lower, and [`TIME_BOUND_DIVISOR`] does not apply.
const REGTEST_MAX_FUTURE_BLOCK_TIME_SECS: u32 = BITCOIN_TIME_BOUND_SECS;

/// Seconds a retarget window is expected to take: `retarget_window - 1` block intervals,
/// since it is measured from its first block to its last.
pub fn expected_timespan_secs(retarget_window: u32, block_interval_secs: u32) -> u64 {
    u64::from(retarget_window.saturating_sub(1)) * u64::from(block_interval_secs)
}

/// A pre-funded account of a development network, with its deliberately public key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevAccount {
    /// Name such as `dev0`.
    pub name: String,
    /// The secret key, public on purpose (like anvil's accounts). Never use on a real network.
    pub secret_key_hex: String,
    /// Its address.
    pub address: String,
    /// Its genesis balance in base units.
    pub balance: u64,
}

/// The `genesis.json` file as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisConfig {
    /// Network name; part of every sighash, gossip topic and handshake.
    pub network_id: String,
    /// Address prefix.
    pub hrp: String,
    /// Timestamp of the genesis block.
    pub genesis_time: u32,
    /// Text in the genesis coinbase.
    #[serde(default)]
    pub genesis_message: String,
    /// Target seconds between blocks.
    pub block_interval_secs: u32,
    /// Blocks between difficulty adjustments.
    pub retarget_window: u32,
    /// `false` keeps the initial difficulty forever (like Bitcoin's regtest).
    #[serde(default = "default_true")]
    pub difficulty_adjustment: bool,
    /// Compact target of the genesis block and of the first window, as 8 hex digits.
    pub initial_bits: String,
    /// Easiest target ever allowed, as 8 hex digits.
    pub pow_limit_bits: String,
    /// Coinbase reward before the first halving, in base units.
    pub initial_subsidy: u64,
    /// Blocks between subsidy halvings.
    pub halving_interval: u32,
    /// Confirmations before a coinbase output may be spent.
    pub coinbase_maturity: u32,
    /// Largest encoded block in bytes.
    pub max_block_size: usize,
    /// How far ahead of the node's clock a block's time may be. With difficulty
    /// adjustment, at most a quarter of the window's expected timespan
    /// ([`TIME_BOUND_DIVISOR`]).
    #[serde(default = "default_future")]
    pub max_future_block_time_secs: u32,
    /// BIP54: how far the first block of a retarget window may go back from its parent.
    /// With difficulty adjustment, at most a quarter of the window's expected timespan
    /// ([`TIME_BOUND_DIVISOR`]).
    #[serde(default = "default_timewarp")]
    pub timewarp_grace_secs: u32,
    /// Accounts funded in the genesis block.
    #[serde(default)]
    pub dev_accounts: Vec<DevAccount>,
}

fn default_true() -> bool {
    true
}
fn default_future() -> u32 {
    BITCOIN_TIME_BOUND_SECS
}
fn default_timewarp() -> u32 {
    BITCOIN_TIME_BOUND_SECS
}

/// Why a `genesis.json` is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Not JSON of the expected shape.
    #[error("genesis file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has a value the chain cannot work with.
    #[error("genesis field `{field}`: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn field_err(field: &'static str, reason: impl Into<String>) -> ParamsError {
    ParamsError::Field {
        field,
        reason: reason.into(),
    }
}

/// Validated chain parameters plus what derives from them.
#[derive(Debug, Clone)]
pub struct ChainParams {
    /// The file they came from.
    pub config: GenesisConfig,
    /// Network name.
    pub network_id: String,
    /// Address prefix.
    pub hrp: String,
    /// Target seconds between blocks.
    pub block_interval_secs: u32,
    /// Blocks between difficulty adjustments.
    pub retarget_window: u32,
    /// Whether difficulty adjusts at all.
    pub difficulty_adjustment: bool,
    /// Compact target of the genesis block.
    pub initial_bits: CompactTarget,
    /// Easiest allowed target.
    pub pow_limit: Target,
    /// Initial subsidy.
    pub initial_subsidy: Amount,
    /// Blocks between halvings.
    pub halving_interval: u32,
    /// Confirmations before a coinbase output may be spent.
    pub coinbase_maturity: u32,
    /// Largest encoded block in bytes.
    pub max_block_size: usize,
    /// Allowed clock skew into the future.
    pub max_future_block_time_secs: u32,
    /// BIP54 timewarp bound.
    pub timewarp_grace_secs: u32,
    /// Domain separator of signatures: SHA-256d of the network id.
    pub network_magic: Hash256,
    /// Hash of all consensus parameters, compared in the p2p handshake.
    pub params_hash: Hash256,
    /// Genesis block, derived from the parameters.
    pub genesis_block: Block,
    /// Its hash.
    pub genesis_hash: BlockHash,
    /// Premine plus every subsidy the schedule will ever pay.
    pub max_money: Amount,
}

/// The deterministic secret key of dev account `index`: SHA-256("cairn devnet account {index}").
/// Public by design, like anvil's well-known accounts.
pub fn dev_secret_key(index: u32) -> SecretKey {
    let seed = sha256(format!("cairn devnet account {index}").as_bytes());
    SecretKey::from_bytes(&seed).expect(
        "SHA-256 output is a valid secp256k1 key with overwhelming probability; checked by test",
    )
}

fn parse_bits(field: &'static str, s: &str) -> Result<CompactTarget, ParamsError> {
    let s = s.trim_start_matches("0x");
    let v = u32::from_str_radix(s, 16)
        .map_err(|e| field_err(field, format!("not 8 hex digits: {e}")))?;
    Ok(CompactTarget(v))
}

impl ChainParams {
    /// The dev network of the repository's `genesis.json`.
    pub fn devnet() -> ChainParams {
        ChainParams::from_json(DEVNET_GENESIS_JSON)
            .expect("the embedded genesis.json is valid; checked by test")
    }

    /// A regression-test network: the dev network's accounts at the easiest difficulty,
    /// never adjusted, so tests mine thousands of blocks in seconds (like Bitcoin's regtest),
    /// and Bitcoin's two-hour future limit so those blocks may run ahead of the clock.
    pub fn regtest() -> ChainParams {
        let mut config = ChainParams::devnet().config;
        config.network_id = "cairn-regtest".into();
        config.initial_bits = config.pow_limit_bits.clone();
        config.difficulty_adjustment = false;
        config.max_future_block_time_secs = REGTEST_MAX_FUTURE_BLOCK_TIME_SECS;
        config.genesis_message = "regtest".into();
        ChainParams::from_config(config).expect("regtest parameters are valid; checked by test")
    }

    /// Parses and validates a `genesis.json`.
    pub fn from_json(json: &str) -> Result<ChainParams, ParamsError> {
        let config: GenesisConfig = serde_json::from_str(json)?;
        ChainParams::from_config(config)
    }

    /// Validates a parsed config and derives the genesis block.
    pub fn from_config(config: GenesisConfig) -> Result<ChainParams, ParamsError> {
        check_scalars(&config)?;
        check_time_bounds(&config)?;
        let (initial_bits, pow_limit) = difficulty_bounds(&config)?;
        let (outputs, premine) = premine_outputs(&config)?;
        let max_money = schedule_total(config.initial_subsidy, config.halving_interval)
            .and_then(|s| s.checked_add(premine))
            .ok_or_else(|| field_err("initial_subsidy", "total supply overflows u64"))?;
        let genesis_block = genesis_block(&config, outputs, initial_bits)?;
        let genesis_hash = genesis_block.block_hash();
        let network_magic = sha256d(format!("cairn-network:{}", config.network_id).as_bytes());
        let params_hash =
            sha256d(&serde_json::to_vec(&config).expect("GenesisConfig always serialises"));

        Ok(ChainParams {
            network_id: config.network_id.clone(),
            hrp: config.hrp.clone(),
            block_interval_secs: config.block_interval_secs,
            retarget_window: config.retarget_window,
            difficulty_adjustment: config.difficulty_adjustment,
            initial_bits,
            pow_limit,
            initial_subsidy: Amount::from_base(config.initial_subsidy),
            halving_interval: config.halving_interval,
            coinbase_maturity: config.coinbase_maturity,
            max_block_size: config.max_block_size,
            max_future_block_time_secs: config.max_future_block_time_secs,
            timewarp_grace_secs: config.timewarp_grace_secs,
            network_magic,
            params_hash,
            genesis_block,
            genesis_hash,
            max_money,
            config,
        })
    }

    /// The coinbase subsidy at `height`: halves every `halving_interval` blocks.
    pub fn subsidy(&self, height: u32) -> Amount {
        let halvings = height / self.halving_interval;
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_base(self.initial_subsidy.to_base() >> halvings)
    }

    /// Encodes a key hash as an address of this network.
    pub fn address(&self, hash: &PubkeyHash) -> String {
        encode_address(&self.hrp, hash)
    }

    /// Decodes an address of this network.
    pub fn parse_address(&self, address: &str) -> Result<PubkeyHash, crate::address::AddressError> {
        decode_address(&self.hrp, address)
    }

    /// Seconds a retarget window is expected to take ([`expected_timespan_secs`]).
    pub fn expected_timespan_secs(&self) -> u64 {
        expected_timespan_secs(self.retarget_window, self.block_interval_secs)
    }

    /// Difficulty of `target` relative to the easiest allowed target.
    pub fn difficulty(&self, target: &Target) -> f64 {
        target.difficulty_relative_to(&self.pow_limit)
    }
}

/// The single-valued fields of genesis.json: names, interval, window, halving, block size.
fn check_scalars(config: &GenesisConfig) -> Result<(), ParamsError> {
    if config.network_id.is_empty() || config.network_id.len() > 64 {
        return Err(field_err("network_id", "must be 1 to 64 characters"));
    }
    if !is_valid_hrp(&config.hrp) {
        return Err(field_err(
            "hrp",
            "must be a lowercase bech32 human-readable part",
        ));
    }
    if config.block_interval_secs == 0 {
        return Err(field_err("block_interval_secs", "must be positive"));
    }
    if config.retarget_window < 2 {
        return Err(field_err("retarget_window", "must be at least 2"));
    }
    if config.halving_interval == 0 {
        return Err(field_err("halving_interval", "must be positive"));
    }
    if !(1000..=MAX_BLOCK_SIZE_LIMIT).contains(&config.max_block_size) {
        return Err(field_err(
            "max_block_size",
            format!("must be 1000..={MAX_BLOCK_SIZE_LIMIT}"),
        ));
    }
    Ok(())
}

/// The genesis difficulty and the easiest target allowed: both valid compact targets, the
/// first canonical and no easier than the second.
fn difficulty_bounds(config: &GenesisConfig) -> Result<(CompactTarget, Target), ParamsError> {
    let initial_bits = parse_bits("initial_bits", &config.initial_bits)?;
    let pow_limit_bits = parse_bits("pow_limit_bits", &config.pow_limit_bits)?;
    let pow_limit = Target::from_compact(pow_limit_bits)
        .map_err(|e| field_err("pow_limit_bits", e.to_string()))?;
    let initial_target =
        Target::from_compact(initial_bits).map_err(|e| field_err("initial_bits", e.to_string()))?;
    if initial_target > pow_limit {
        return Err(field_err("initial_bits", "is easier than pow_limit_bits"));
    }
    if initial_target.to_compact() != initial_bits {
        return Err(field_err(
            "initial_bits",
            "is not in canonical compact form",
        ));
    }
    Ok((initial_bits, pow_limit))
}

/// The dev accounts' genesis outputs and their total: each key must own its address and
/// hold a positive balance.
fn premine_outputs(config: &GenesisConfig) -> Result<(Vec<TxOut>, Amount), ParamsError> {
    let mut outputs = Vec::with_capacity(config.dev_accounts.len());
    let mut premine = Amount::ZERO;
    for account in &config.dev_accounts {
        let hash = decode_address(&config.hrp, &account.address)
            .map_err(|e| field_err("dev_accounts", e.to_string()))?;
        let key = SecretKey::from_hex(&account.secret_key_hex)
            .map_err(|e| field_err("dev_accounts", format!("{}: {e}", account.name)))?;
        if key.pubkey_hash() != hash {
            return Err(field_err(
                "dev_accounts",
                format!(
                    "{}: secret key does not belong to address {}",
                    account.name, account.address
                ),
            ));
        }
        if account.balance == 0 {
            return Err(field_err(
                "dev_accounts",
                format!("{}: balance must be positive", account.name),
            ));
        }
        premine = premine
            .checked_add(Amount::from_base(account.balance))
            .ok_or_else(|| field_err("dev_accounts", "balances overflow"))?;
        outputs.push(TxOut {
            amount: Amount::from_base(account.balance),
            address: hash,
        });
    }
    Ok((outputs, premine))
}

/// The genesis block: one coinbase paying the premine, its data the network id and message.
fn genesis_block(
    config: &GenesisConfig,
    outputs: Vec<TxOut>,
    bits: CompactTarget,
) -> Result<Block, ParamsError> {
    let data = format!("{} {}", config.network_id, config.genesis_message).into_bytes();
    if data.len() > MAX_TX_DATA {
        return Err(field_err("genesis_message", "too long"));
    }
    let coinbase = Transaction {
        version: 1,
        inputs: vec![],
        outputs,
        lock_height: 0,
        data,
    };
    let header = BlockHeader {
        version: 1,
        prev_blockhash: BlockHash::ZERO,
        merkle_root: merkle_root(&[coinbase.wtxid()]),
        time: config.genesis_time,
        bits,
        nonce: 0,
    };
    Ok(Block {
        header,
        txs: vec![coinbase],
    })
}

/// [`TIME_BOUND_DIVISOR`]: on a retargeting network, the grace and the future limit fit the
/// window's expected timespan.
fn check_time_bounds(config: &GenesisConfig) -> Result<(), ParamsError> {
    if !config.difficulty_adjustment {
        return Ok(());
    }
    let expected = expected_timespan_secs(config.retarget_window, config.block_interval_secs);
    let bound = expected / TIME_BOUND_DIVISOR;
    let fields = [
        ("timewarp_grace_secs", config.timewarp_grace_secs),
        (
            "max_future_block_time_secs",
            config.max_future_block_time_secs,
        ),
    ];
    for (field, value) in fields {
        if u64::from(value) > bound {
            return Err(field_err(
                field,
                format!(
                    "{value} s exceeds the bound of {bound} s, a quarter of the retarget \
                     window's expected timespan of {expected} s ((retarget_window {} - 1) × \
                     block_interval_secs {}): a larger value lets a majority miner lower the \
                     difficulty every window (an absent field defaults to {BITCOIN_TIME_BOUND_SECS} s)",
                    config.retarget_window, config.block_interval_secs
                ),
            ));
        }
    }
    Ok(())
}

/// Sum of all subsidies the halving schedule will pay: heights 1 onwards, since the genesis
/// block (height 0, the first of era 0) pays the premine, not a subsidy.
fn schedule_total(initial: u64, interval: u32) -> Option<Amount> {
    let mut total: u128 = 0;
    for halving in 0..64 {
        total += (initial >> halving) as u128 * interval as u128;
    }
    total -= initial as u128;
    u64::try_from(total).ok().map(Amount::from_base)
}

/// Builds a [`GenesisConfig`] with `count` dev accounts of `balance` each; used to write
/// `genesis.json` and by tests that need a network of their own.
pub fn dev_accounts(hrp: &str, count: u32, balance: u64) -> Vec<DevAccount> {
    (0..count)
        .map(|i| {
            let key = dev_secret_key(i);
            DevAccount {
                name: format!("dev{i}"),
                secret_key_hex: hex::encode(key.to_bytes()),
                address: encode_address(hrp, &key.pubkey_hash()),
                balance,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_genesis_is_valid_and_deterministic() {
        let a = ChainParams::devnet();
        let b = ChainParams::devnet();
        assert_eq!(a.genesis_hash, b.genesis_hash);
        assert_eq!(a.hrp, "crt");
        assert!(a.config.dev_accounts.len() >= 10);
        // The file's dev accounts are exactly the documented deterministic keys.
        let expected = dev_accounts(
            &a.hrp,
            a.config.dev_accounts.len() as u32,
            a.config.dev_accounts[0].balance,
        );
        assert_eq!(a.config.dev_accounts, expected);
        assert_eq!(
            a.genesis_block.compute_merkle_root(),
            a.genesis_block.header.merkle_root
        );
    }

    #[test]
    fn subsidy_halves_and_ends() {
        let p = ChainParams::devnet();
        assert_eq!(p.subsidy(0), p.initial_subsidy);
        assert_eq!(
            p.subsidy(p.halving_interval).to_base(),
            p.initial_subsidy.to_base() / 2
        );
        assert_eq!(
            p.subsidy(p.halving_interval.saturating_mul(64)),
            Amount::ZERO
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = ChainParams::devnet().config;
        c.hrp = "CRT!".into();
        assert!(matches!(
            ChainParams::from_config(c),
            Err(ParamsError::Field { field: "hrp", .. })
        ));
        let mut c = ChainParams::devnet().config;
        c.dev_accounts[1].secret_key_hex = c.dev_accounts[0].secret_key_hex.clone();
        assert!(matches!(
            ChainParams::from_config(c),
            Err(ParamsError::Field {
                field: "dev_accounts",
                ..
            })
        ));
        let mut c = ChainParams::devnet().config;
        c.initial_bits = "217fffff".into();
        assert!(ChainParams::from_config(c).is_err());
        assert!(matches!(
            ChainParams::from_json("{}"),
            Err(ParamsError::Json(_))
        ));
    }

    #[test]
    fn time_bounds_beyond_a_quarter_of_the_window_are_rejected_only_when_retargeting() {
        let devnet = ChainParams::devnet();
        let bound = devnet.expected_timespan_secs() / TIME_BOUND_DIVISOR;
        assert_eq!(devnet.expected_timespan_secs(), 295);
        assert!(u64::from(devnet.timewarp_grace_secs) <= bound);
        assert!(u64::from(devnet.max_future_block_time_secs) <= bound);
        for field in ["timewarp_grace_secs", "max_future_block_time_secs"] {
            let mut c = devnet.config.clone();
            let at_bound = u32::try_from(bound).expect("small");
            let set = |c: &mut GenesisConfig, v: u32| match field {
                "timewarp_grace_secs" => c.timewarp_grace_secs = v,
                _ => c.max_future_block_time_secs = v,
            };
            set(&mut c, at_bound);
            ChainParams::from_config(c.clone()).expect("at the bound");
            set(&mut c, at_bound + 1);
            let err = ChainParams::from_config(c.clone()).expect_err("above the bound");
            assert!(
                matches!(err, ParamsError::Field { field: f, .. } if f == field),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{} s", at_bound + 1)), "{text}");
            assert!(text.contains(&format!("bound of {bound} s")), "{text}");
            c.difficulty_adjustment = false;
            ChainParams::from_config(c).expect("no retarget, nothing to warp");
        }
        assert_eq!(
            ChainParams::regtest().max_future_block_time_secs,
            REGTEST_MAX_FUTURE_BLOCK_TIME_SECS
        );
    }
}
