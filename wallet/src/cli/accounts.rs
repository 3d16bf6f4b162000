//! `new`, `import-dev`, `address` and `balance`: the wallet's keys and what they hold.

use super::{Console, PassphraseSource, Session, created_note, print_json, save};
use crate::coins::CoinSnapshot;
use crate::keystore::{KdfParams, KeyKind};
use cairn_core::{Amount, ChainParams};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) fn cmd_new(
    ctx: &Session,
    console: &mut Console<'_>,
    label: Option<&str>,
) -> anyhow::Result<()> {
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet, created) = ctx.open_or_create(console)?;
    let label = label.unwrap_or("receive");
    let hash = wallet.generate_key(KeyKind::Receive, label)?;
    save(&keystore, &wallet)?;
    if created {
        created_note(console, &keystore)?;
    }
    let address = wallet.address(&hash);
    if ctx.json {
        print_json(
            console,
            &json!({"address": address, "label": label, "wallet": keystore.path(), "created": created}),
        )
    } else {
        writeln!(console.out, "{address}")?;
        Ok(())
    }
}

pub(super) fn cmd_import_dev(
    ctx: &Session,
    console: &mut Console<'_>,
    index: u32,
) -> anyhow::Result<()> {
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet, created) = ctx.open_or_create(console)?;
    let (hash, added) = wallet.import_dev(index)?;
    if added || created {
        save(&keystore, &wallet)?;
    }
    if created {
        created_note(console, &keystore)?;
    }
    let label = wallet
        .key_for(&hash)
        .map(|k| k.label().to_owned())
        .unwrap_or_default();
    if !added {
        writeln!(
            console.err,
            "{label} is already in {}",
            keystore.path().display()
        )?;
    }
    let address = wallet.address(&hash);
    if ctx.json {
        print_json(
            console,
            &json!({"address": address, "label": label, "added": added, "wallet": keystore.path()}),
        )
    } else {
        writeln!(console.out, "{address}")?;
        Ok(())
    }
}

/// Imports the network's dev account `index` into the wallet file `wallet` and returns its
/// address. A missing file is created as an *insecure plaintext* wallet: this is what
/// `cairn testnet up` does for each node's wallet, with keys that are public anyway. An
/// existing encrypted wallet needs its passphrase (`$CAIRN_WALLET_PASSPHRASE` or a prompt).
pub fn import_dev_into(wallet: &Path, params: &ChainParams, index: u32) -> anyhow::Result<String> {
    let session = Session {
        params: params.clone(),
        datadir: wallet
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        wallet_path: wallet.to_path_buf(),
        rpc_url: None,
        cookie: None,
        insecure_plaintext: true,
        json: false,
    };
    let mut out = std::io::sink();
    let mut err = std::io::sink();
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        passphrase: PassphraseSource::EnvOrPrompt,
        kdf: KdfParams::default(),
    };
    let _lock = session.lock(&mut console)?;
    let (keystore, mut wallet, created) = session.open_or_create(&mut console)?;
    let (hash, added) = wallet.import_dev(index)?;
    if added || created {
        save(&keystore, &wallet)?;
    }
    Ok(wallet.address(&hash))
}

pub(super) fn cmd_address(
    ctx: &Session,
    console: &mut Console<'_>,
    all: bool,
) -> anyhow::Result<()> {
    let (_, wallet) = ctx.open(console)?;
    let keys: Vec<_> = wallet
        .keys()
        .iter()
        .filter(|k| all || k.kind() != KeyKind::Change)
        .collect();
    if ctx.json {
        let list: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({
                    "address": wallet.address(&k.pubkey_hash()),
                    "kind": k.kind().as_str(),
                    "label": k.label(),
                })
            })
            .collect();
        return print_json(console, &Value::Array(list));
    }
    if keys.is_empty() {
        writeln!(
            console.err,
            "the wallet has no receive address yet: run `cairn wallet new`"
        )?;
    }
    for key in keys {
        writeln!(console.out, "{}", wallet.address(&key.pubkey_hash()))?;
    }
    Ok(())
}

pub(super) fn cmd_balance(ctx: &Session, console: &mut Console<'_>) -> anyhow::Result<()> {
    let (_, wallet) = ctx.open(console)?;
    let rpc = ctx.client()?;
    let snapshot = CoinSnapshot::fetch(&rpc, wallet.params(), &wallet.pubkey_hashes())?;
    let balance = snapshot.balance();
    if ctx.json {
        let addresses: Vec<Value> = wallet
            .keys()
            .iter()
            .map(|k| {
                let b = snapshot.balance_of(&k.pubkey_hash());
                json!({
                    "address": wallet.address(&k.pubkey_hash()),
                    "kind": k.kind().as_str(),
                    "confirmed": b.confirmed,
                    "unconfirmed": b.unconfirmed,
                    "immature": b.immature,
                    "spending": b.spending,
                })
            })
            .collect();
        return print_json(
            console,
            &json!({
                "confirmed": balance.confirmed,
                "unconfirmed": balance.unconfirmed,
                "immature": balance.immature,
                "spending": balance.spending,
                "total": balance.total(),
                "height": snapshot.tip_height,
                "addresses": addresses,
            }),
        );
    }
    let out = &mut console.out;
    writeln!(out, "confirmed:   {}", balance.confirmed)?;
    writeln!(out, "unconfirmed: {}", balance.unconfirmed)?;
    writeln!(out, "immature:    {}", balance.immature)?;
    writeln!(out, "total:       {}", balance.total())?;
    if balance.spending > Amount::ZERO {
        writeln!(
            out,
            "({} in confirmed coins is being spent by unconfirmed transactions)",
            balance.spending
        )?;
    }
    for (coin, height) in snapshot.immature() {
        writeln!(
            out,
            "  immature coinbase {} of {} spendable from height {height}",
            coin.output.amount, coin.outpoint
        )?;
    }
    writeln!(out, "at height {}", snapshot.tip_height)?;
    Ok(())
}
