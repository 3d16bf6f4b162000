//! Prints a `genesis.json` with the deterministic dev accounts, for making a network of your own:
//! `cargo run -p cairn-core --example genesis -- [ACCOUNTS] [BALANCE_COINS] < base.json`
//! reads a genesis JSON (its `dev_accounts` are replaced) and prints the result.

use cairn_core::amount::COIN;
use cairn_core::params::{ChainParams, GenesisConfig, dev_accounts};
use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let coins: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let mut config: GenesisConfig = serde_json::from_str(&input)?;
    config.dev_accounts = dev_accounts(&config.hrp, count, coins * COIN);
    let params = ChainParams::from_config(config.clone())?;
    eprintln!("genesis hash {}", params.genesis_hash);
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}
