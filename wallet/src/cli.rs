//! `cairn wallet …`: the command line of the wallet (see `shared/INTERFACE.md`).
//!
//! ```text
//! cairn wallet [--wallet FILE] [--datadir DIR | --rpc-url URL --cookie FILE] [--genesis FILE]
//!              [--insecure-plaintext] [--json]
//!     new | import-dev N | address [--all] | balance
//!     | send --to ADDR --amount N [--fee N | --fee-rate R]
//!     | double-spend --to ADDR --to2 ADDR --amount N [--node A] [--node2 B] [--cookie2 FILE]
//!                    [--replace] [--fee N | --fee-rate R]
//!     | history
//! ```
//!
//! - The wallet file defaults to `DATADIR/wallet.json`; `DATADIR` to `$CAIRN_DATADIR`, else
//!   `./.cairn`. The node is the one of `DATADIR` (its `node.json` and `.cookie`) unless
//!   `--rpc-url URL --cookie FILE` names one.
//! - The passphrase comes from `$CAIRN_WALLET_PASSPHRASE`, else from a prompt without echo
//!   when stdin is a terminal (twice when creating a wallet). `--insecure-plaintext` makes a
//!   *new* wallet file unencrypted (development keys only); an existing file keeps its
//!   protection. Opening a plaintext wallet prints a warning on stderr.
//! - `--node`/`--node2` of `double-spend` take a datadir or an `http://` URL. A URL's cookie
//!   is `--cookie` for `--node` and `--cookie2` (falling back to `--cookie`) for `--node2`.
//!   `--node` defaults to the wallet's node, `--node2` to `--node`.
//! - Amounts and fees are integers in base units. The default fee is one base unit per
//!   encoded byte.
//! - Output is for people; `--json` prints one JSON document for scripts. `send` prints the
//!   txid alone on its first line. Failures return an error (`error: …`, exit 1).
//!   `double-spend` succeeds once both nodes *answered*, whatever they answered.
//! - Coins are never spent twice by accident: those spent by transactions in the node's
//!   mempool are excluded, and so, for [`PENDING_RESERVATION_SECS`], are the inputs of this
//!   wallet's own recent payments (in case this node has not seen them yet). A double spend
//!   across two nodes spends a confirmed coin, one both nodes know.

use crate::coin_selection::FeePolicy;
use crate::coins::{ChainInfo, CoinSnapshot, WalletCoin};
use crate::keystore::{KdfParams, KeyKind, Keystore, SentKind, SentRecord, WalletFile, WalletLock};
use crate::rpc::{RpcClient, RpcError, codes};
use crate::wallet::{BuiltTx, ConflictRequest, PaymentRequest, Wallet};
use anyhow::{Context, bail};
use cairn_core::{Amount, ChainParams, PubkeyHash};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The environment variable holding the wallet passphrase.
pub const PASSPHRASE_ENV: &str = "CAIRN_WALLET_PASSPHRASE";

/// The data directory when neither `--datadir` nor `$CAIRN_DATADIR` is given.
pub const DEFAULT_DATADIR: &str = ".cairn";

/// The wallet file's name inside the data directory.
pub const DEFAULT_WALLET_FILE: &str = "wallet.json";

/// Arguments of `cairn wallet`.
#[derive(Debug, Args)]
pub struct WalletArgs {
    /// Wallet file [default: DATADIR/wallet.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub wallet: Option<PathBuf>,
    /// Data directory of the node to use and of the default wallet [default: $CAIRN_DATADIR or ./.cairn]
    #[arg(long, global = true, env = "CAIRN_DATADIR", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// RPC URL of the node, e.g. http://127.0.0.1:18443 (with --cookie)
    #[arg(long, global = true, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// Cookie file of the node at --rpc-url (or at a --node URL)
    #[arg(long, global = true, value_name = "FILE")]
    pub cookie: Option<PathBuf>,
    /// Network parameters [default: the embedded dev network]
    #[arg(long, global = true, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Create the wallet file unencrypted: development keys only
    #[arg(long, global = true)]
    pub insecure_plaintext: bool,
    /// Print JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The subcommands of `cairn wallet`.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Add a fresh random key and print its address (creates the wallet if needed)
    New {
        /// A label for the key
        #[arg(long)]
        label: Option<String>,
    },
    /// Add the network's genesis dev account N (its key is public: development only)
    ImportDev {
        /// Index of the dev account in genesis.json
        index: u32,
    },
    /// Print the wallet's receive addresses, one per line
    Address {
        /// Include change addresses
        #[arg(long)]
        all: bool,
    },
    /// Show confirmed, unconfirmed (mempool) and immature (coinbase) balances
    Balance,
    /// Pay an address
    Send {
        /// Recipient address
        #[arg(long, value_name = "ADDR")]
        to: String,
        /// Amount in base units
        #[arg(long, value_name = "N")]
        amount: u64,
        /// Absolute fee in base units
        #[arg(long, value_name = "N", conflicts_with = "fee_rate")]
        fee: Option<u64>,
        /// Fee rate in base units per byte [default: 1]
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
    },
    /// Spend one coin twice: the first transaction to --node, a conflicting one to --node2
    DoubleSpend {
        /// Recipient of the first transaction
        #[arg(long, value_name = "ADDR")]
        to: String,
        /// Recipient of the second transaction
        #[arg(long, value_name = "ADDR")]
        to2: String,
        /// Amount each pays, in base units
        #[arg(long, value_name = "N")]
        amount: u64,
        /// Node for the first: a datadir or a URL [default: the wallet's node]
        #[arg(long, value_name = "DATADIR|URL")]
        node: Option<String>,
        /// Node for the second: a datadir or a URL [default: --node]
        #[arg(long, value_name = "DATADIR|URL")]
        node2: Option<String>,
        /// Cookie file for a --node2 URL [default: --cookie]
        #[arg(long, value_name = "FILE")]
        cookie2: Option<PathBuf>,
        /// Make the second a replace-by-fee: strictly higher fee and fee rate
        #[arg(long)]
        replace: bool,
        /// Absolute fee of the first, in base units
        #[arg(long, value_name = "N", conflicts_with = "fee_rate")]
        fee: Option<u64>,
        /// Fee rate of the first, base units per byte [default: 1]
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
    },
    /// Transactions this wallet sent and the coins it holds
    History,
}

/// Where the passphrase comes from.
#[derive(Clone)]
pub enum PassphraseSource {
    /// `$CAIRN_WALLET_PASSPHRASE`, else a prompt if stdin is a terminal.
    EnvOrPrompt,
    /// This passphrase (tests, embedding programs).
    Fixed(Zeroizing<String>),
}

impl std::fmt::Debug for PassphraseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassphraseSource::EnvOrPrompt => f.write_str("EnvOrPrompt"),
            PassphraseSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
        }
    }
}

impl PassphraseSource {
    /// The passphrase; `confirm` asks twice at a prompt (when creating a wallet).
    pub fn get(&self, wallet: &Path, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        match self {
            PassphraseSource::Fixed(p) => Ok(p.clone()),
            PassphraseSource::EnvOrPrompt => {
                if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
                    let value = value
                        .into_string()
                        .map_err(|_| anyhow::anyhow!("{PASSPHRASE_ENV} is not valid UTF-8"))?;
                    return Ok(Zeroizing::new(value));
                }
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "wallet {} needs a passphrase: set {PASSPHRASE_ENV} (stdin is not a terminal to prompt on)",
                        wallet.display()
                    );
                }
                let first = Zeroizing::new(
                    rpassword::prompt_password(format!("Passphrase for {}: ", wallet.display()))
                        .context("reading the passphrase")?,
                );
                if confirm {
                    let again = Zeroizing::new(
                        rpassword::prompt_password("Repeat the passphrase: ")
                            .context("reading the passphrase")?,
                    );
                    if *first != *again {
                        bail!("the passphrases differ");
                    }
                }
                Ok(first)
            }
        }
    }
}

/// Where output goes and how secrets are obtained: the real terminal for [`run`], buffers
/// and fixed values for tests.
pub struct Console<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Notes and warnings.
    pub err: &'a mut dyn Write,
    /// The passphrase.
    pub passphrase: PassphraseSource,
    /// Argon2id cost of newly created wallet files.
    pub kdf: KdfParams,
}

/// Runs `cairn wallet` on the process's stdout, stderr and terminal.
pub fn run(args: WalletArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        passphrase: PassphraseSource::EnvOrPrompt,
        kdf: KdfParams::default(),
    };
    match execute(args, &mut console) {
        // `cairn wallet send ... | head -n 1` closes the pipe after the line it wanted: the
        // reader's choice, not a failure (the command's work is done by then).
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Whether `e` is, somewhere in its chain, a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs `cairn wallet` on `console`.
pub fn execute(args: WalletArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let ctx = Session::new(&args)?;
    match &args.command {
        WalletCommand::New { label } => cmd_new(&ctx, console, label.as_deref()),
        WalletCommand::ImportDev { index } => cmd_import_dev(&ctx, console, *index),
        WalletCommand::Address { all } => cmd_address(&ctx, console, *all),
        WalletCommand::Balance => cmd_balance(&ctx, console),
        WalletCommand::Send {
            to,
            amount,
            fee,
            fee_rate,
        } => cmd_send(&ctx, console, to, *amount, fee_policy(*fee, *fee_rate)),
        WalletCommand::DoubleSpend {
            to,
            to2,
            amount,
            node,
            node2,
            cookie2,
            replace,
            fee,
            fee_rate,
        } => cmd_double_spend(
            &ctx,
            console,
            DoubleSpendArgs {
                to,
                to2,
                amount: *amount,
                node: node.as_deref(),
                node2: node2.as_deref(),
                cookie2: cookie2.as_deref(),
                replace: *replace,
                fee: fee_policy(*fee, *fee_rate),
            },
        ),
        WalletCommand::History => cmd_history(&ctx, console),
    }
}

fn fee_policy(fee: Option<u64>, fee_rate: Option<u64>) -> FeePolicy {
    match (fee, fee_rate) {
        (Some(fee), _) => FeePolicy::Absolute(Amount::from_base(fee)),
        (None, Some(rate)) => FeePolicy::Rate(rate),
        (None, None) => FeePolicy::default(),
    }
}

/// What every command needs from the global arguments.
struct Session {
    params: ChainParams,
    datadir: PathBuf,
    wallet_path: PathBuf,
    rpc_url: Option<String>,
    cookie: Option<PathBuf>,
    insecure_plaintext: bool,
    json: bool,
}

/// The chain parameters of `genesis` (a genesis.json file), or the embedded dev network's.
/// The one reader of a genesis file that every command line of Cairn uses.
pub fn load_params(genesis: Option<&Path>) -> anyhow::Result<ChainParams> {
    match genesis {
        None => Ok(ChainParams::devnet()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading genesis file {}", path.display()))?;
            ChainParams::from_json(&text)
                .with_context(|| format!("genesis file {}", path.display()))
        }
    }
}

impl Session {
    fn new(args: &WalletArgs) -> anyhow::Result<Session> {
        let params = load_params(args.genesis.as_deref())?;
        let datadir = args
            .datadir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATADIR));
        let wallet_path = args
            .wallet
            .clone()
            .unwrap_or_else(|| datadir.join(DEFAULT_WALLET_FILE));
        Ok(Session {
            params,
            datadir,
            wallet_path,
            rpc_url: args.rpc_url.clone(),
            cookie: args.cookie.clone(),
            insecure_plaintext: args.insecure_plaintext,
            json: args.json,
        })
    }

    /// The wallet's node.
    fn client(&self) -> anyhow::Result<RpcClient> {
        match (&self.rpc_url, &self.cookie) {
            (Some(url), Some(cookie)) => Ok(RpcClient::from_url(url, cookie)?),
            (Some(_), None) => bail!("--rpc-url needs --cookie FILE (the node's DATADIR/.cookie)"),
            (None, _) => Ok(RpcClient::from_datadir(&self.datadir)?),
        }
    }

    /// A `--node`/`--node2` value: a URL (with `cookie`) or a datadir.
    fn node(&self, spec: &str, cookie: Option<&Path>) -> anyhow::Result<RpcClient> {
        if spec.contains("://") {
            let cookie = cookie.with_context(|| {
                format!("node {spec} is a URL: pass its cookie file with --cookie (or --cookie2 for --node2)")
            })?;
            Ok(RpcClient::from_url(spec, cookie)?)
        } else {
            Ok(RpcClient::from_datadir(spec)?)
        }
    }

    fn parse_address(&self, flag: &str, address: &str) -> anyhow::Result<PubkeyHash> {
        self.params
            .parse_address(address)
            .with_context(|| format!("{flag} {address}"))
    }

    /// Opens the wallet file.
    fn open(&self, console: &mut Console<'_>) -> anyhow::Result<(Keystore, Wallet)> {
        let file = WalletFile::read(&self.wallet_path)?;
        if file.network_id() != self.params.network_id {
            bail!(
                "wallet {} is for network {}, the parameters are for {} (pass --genesis with that network's genesis file)",
                self.wallet_path.display(),
                file.network_id(),
                self.params.network_id
            );
        }
        let passphrase = if file.is_encrypted() {
            Some(console.passphrase.get(&self.wallet_path, false)?)
        } else {
            writeln!(
                console.err,
                "warning: {} is an insecure plaintext wallet (development keys only)",
                self.wallet_path.display()
            )?;
            None
        };
        let (keystore, data) = file.unlock(passphrase.as_ref().map(|p| p.as_str()))?;
        let wallet = Wallet::from_data(self.params.clone(), &data)
            .with_context(|| format!("wallet {}", self.wallet_path.display()))?;
        Ok((keystore, wallet))
    }

    /// Opens the wallet file, or starts a new one (saved by the caller).
    fn open_or_create(
        &self,
        console: &mut Console<'_>,
    ) -> anyhow::Result<(Keystore, Wallet, bool)> {
        if WalletFile::exists(&self.wallet_path) {
            if self.insecure_plaintext {
                writeln!(
                    console.err,
                    "note: --insecure-plaintext only applies when creating a wallet; {} keeps its protection",
                    self.wallet_path.display()
                )?;
            }
            let (keystore, wallet) = self.open(console)?;
            return Ok((keystore, wallet, false));
        }
        let keystore = if self.insecure_plaintext {
            Keystore::create_plaintext(&self.wallet_path, &self.params.network_id)
        } else {
            let passphrase = console.passphrase.get(&self.wallet_path, true)?;
            Keystore::create_encrypted(
                &self.wallet_path,
                &self.params.network_id,
                &passphrase,
                console.kdf,
            )?
        };
        Ok((keystore, Wallet::new(self.params.clone()), true))
    }

    fn lock(&self, console: &mut Console<'_>) -> anyhow::Result<WalletLock> {
        let path = self.wallet_path.clone();
        let err = &mut console.err;
        Ok(WalletLock::acquire(&self.wallet_path, || {
            let _ = writeln!(
                err,
                "waiting for another cairn wallet command using {}",
                path.display()
            );
        })?)
    }
}

fn save(keystore: &Keystore, wallet: &Wallet) -> anyhow::Result<()> {
    keystore
        .save(&wallet.to_data())
        .context("saving the wallet")
}

fn created_note(console: &mut Console<'_>, keystore: &Keystore) -> anyhow::Result<()> {
    let kind = if keystore.is_encrypted() {
        "encrypted wallet"
    } else {
        "INSECURE PLAINTEXT wallet"
    };
    writeln!(console.err, "created {kind} {}", keystore.path().display())?;
    Ok(())
}

fn print_json(console: &mut Console<'_>, value: &Value) -> anyhow::Result<()> {
    writeln!(console.out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn cmd_new(ctx: &Session, console: &mut Console<'_>, label: Option<&str>) -> anyhow::Result<()> {
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

fn cmd_import_dev(ctx: &Session, console: &mut Console<'_>, index: u32) -> anyhow::Result<()> {
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

fn cmd_address(ctx: &Session, console: &mut Console<'_>, all: bool) -> anyhow::Result<()> {
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

fn cmd_balance(ctx: &Session, console: &mut Console<'_>) -> anyhow::Result<()> {
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

/// The node's answer to `sendrawtransaction`.
struct Answer {
    node: String,
    result: Result<String, RpcError>,
}

impl Answer {
    fn accepted(&self) -> bool {
        self.result.is_ok()
    }

    fn text(&self) -> String {
        match &self.result {
            Ok(_) => "accepted".to_owned(),
            Err(RpcError::Rpc { code, message }) => format!("rejected: {message} (code {code})"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn to_json(&self) -> Value {
        match &self.result {
            Ok(txid) => json!({"node": self.node, "accepted": true, "result": txid}),
            Err(RpcError::Rpc { code, message }) => json!({
                "node": self.node, "accepted": false,
                "error": {"code": code, "message": message},
            }),
            Err(e) => {
                json!({"node": self.node, "accepted": false, "error": {"message": e.to_string()}})
            }
        }
    }
}

/// Submits `built`; only an HTTP or transport failure is an `Err` here, a rejection is an
/// answer.
fn submit(rpc: &RpcClient, built: &BuiltTx) -> anyhow::Result<Answer> {
    let result = match rpc.call("sendrawtransaction", json!([built.hex()])) {
        Ok(Value::String(txid)) => Ok(txid),
        Ok(other) => Ok(other.to_string()),
        Err(e) if e.is_answer() => Err(e),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "submitting transaction {} to {}",
                built.txid,
                rpc.url()
            )));
        }
    };
    Ok(Answer {
        node: rpc.url().to_owned(),
        result,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long the inputs of a payment this wallet sent stay reserved even when the node
/// asked does not know the payment: long enough for it to propagate from the node it was
/// sent to, short enough that a dropped payment does not lock its coins for good.
pub const PENDING_RESERVATION_SECS: u64 = 600;

/// The coins a new transaction may spend: the node's spendable set minus the inputs of
/// this wallet's recent payments (which a node other than the one they went to may not
/// have seen yet). Returns them and the value held back.
fn spendable(wallet: &Wallet, snapshot: &CoinSnapshot) -> (Vec<WalletCoin>, Amount) {
    let now = unix_now();
    let reserved: std::collections::BTreeSet<String> = wallet
        .sent()
        .iter()
        .filter(|r| {
            r.kind == SentKind::Payment
                && r.accepted
                && now.saturating_sub(r.time) < PENDING_RESERVATION_SECS
        })
        .flat_map(|r| r.inputs.iter().cloned())
        .collect();
    let (held, free): (Vec<WalletCoin>, Vec<WalletCoin>) = snapshot
        .spendable()
        .into_iter()
        .partition(|c| reserved.contains(&c.outpoint.to_string()));
    let held = Amount::from_base(held.iter().map(|c| c.output.amount.to_base()).sum());
    (free, held)
}

/// Adds to a build failure how much value the reservation of recent payments held back.
fn explain_held(e: crate::wallet::WalletError, held: Amount) -> anyhow::Error {
    let e = anyhow::Error::new(e);
    if held == Amount::ZERO {
        return e;
    }
    e.context(format!(
        "{held} more is in coins that this wallet's payments of the last {} minutes spend and this node has not seen; they are held back so as not to spend them twice",
        PENDING_RESERVATION_SECS / 60
    ))
}

fn record(wallet: &Wallet, built: &BuiltTx, kind: SentKind, answer: &Answer) -> SentRecord {
    SentRecord {
        txid: built.txid.to_string(),
        time: unix_now(),
        kind,
        to: wallet.address(&built.recipient.address),
        amount: built.recipient.amount.to_base(),
        fee: built.fee.to_base(),
        size: built.size,
        inputs: built.spent.iter().map(|c| c.outpoint.to_string()).collect(),
        change: built
            .change
            .map(|c| (wallet.address(&c.address), c.amount.to_base())),
        node: answer.node.clone(),
        accepted: answer.accepted(),
        answer: match &answer.result {
            Ok(txid) => txid.clone(),
            Err(e) => e.to_string(),
        },
        hex: built.hex(),
    }
}

fn built_json(wallet: &Wallet, built: &BuiltTx) -> Value {
    json!({
        "txid": built.txid.to_string(),
        "to": wallet.address(&built.recipient.address),
        "amount": built.recipient.amount,
        "fee": built.fee,
        "size": built.size,
        "change": built.change.map(|c| json!({"address": wallet.address(&c.address), "amount": c.amount})),
        "inputs": built.spent.iter().map(|c| c.outpoint.to_string()).collect::<Vec<_>>(),
        "hex": built.hex(),
    })
}

fn describe(wallet: &Wallet, built: &BuiltTx) -> String {
    let mut s = format!(
        "pays {} to {}, fee {} ({} bytes)",
        built.recipient.amount,
        wallet.address(&built.recipient.address),
        built.fee,
        built.size
    );
    if let Some(change) = built.change {
        s.push_str(&format!(
            ", change {} to {}",
            change.amount,
            wallet.address(&change.address)
        ));
    }
    s
}

fn cmd_send(
    ctx: &Session,
    console: &mut Console<'_>,
    to: &str,
    amount: u64,
    fee: FeePolicy,
) -> anyhow::Result<()> {
    let to = ctx.parse_address("--to", to)?;
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet) = ctx.open(console)?;
    let rpc = ctx.client()?;
    let snapshot = CoinSnapshot::fetch(&rpc, wallet.params(), &wallet.pubkey_hashes())?;
    let (coins, held) = spendable(&wallet, &snapshot);
    let built = wallet
        .build_payment(
            &coins,
            &PaymentRequest {
                to,
                amount: Amount::from_base(amount),
                fee,
            },
        )
        .map_err(|e| explain_held(e, held))?;
    // The change key must be on disk before anything pays to it.
    save(&keystore, &wallet)?;
    let answer = submit(&rpc, &built)?;
    if let Err(e) = &answer.result {
        let reason = match e {
            RpcError::Rpc { message, .. } => message.clone(),
            other => other.to_string(),
        };
        bail!(
            "the node at {} rejected transaction {}: {reason}",
            answer.node,
            built.txid
        );
    }
    wallet.record_sent(record(&wallet, &built, SentKind::Payment, &answer));
    save(&keystore, &wallet)?;
    if ctx.json {
        return print_json(console, &built_json(&wallet, &built));
    }
    writeln!(console.out, "{}", built.txid)?;
    writeln!(console.out, "{}", describe(&wallet, &built))?;
    Ok(())
}

struct DoubleSpendArgs<'a> {
    to: &'a str,
    to2: &'a str,
    amount: u64,
    node: Option<&'a str>,
    node2: Option<&'a str>,
    cookie2: Option<&'a Path>,
    replace: bool,
    fee: FeePolicy,
}

fn cmd_double_spend(
    ctx: &Session,
    console: &mut Console<'_>,
    args: DoubleSpendArgs<'_>,
) -> anyhow::Result<()> {
    let to = ctx.parse_address("--to", args.to)?;
    let to2 = ctx.parse_address("--to2", args.to2)?;
    let node1 = match args.node {
        Some(spec) => ctx.node(spec, ctx.cookie.as_deref())?,
        None => ctx.client()?,
    };
    let node2 = match args.node2 {
        Some(spec) => ctx.node(spec, args.cookie2.or(ctx.cookie.as_deref()))?,
        None => node1.clone(),
    };
    let _lock = ctx.lock(console)?;
    let (keystore, mut wallet) = ctx.open(console)?;
    let snapshot = CoinSnapshot::fetch(&node1, wallet.params(), &wallet.pubkey_hashes())?;
    let (mut coins, held) = spendable(&wallet, &snapshot);
    let cross_node = node2.url() != node1.url();
    if cross_node {
        ChainInfo::fetch(&node2, wallet.params())?;
        // The other node may not have the parent of an unconfirmed coin: it would answer
        // "missing inputs" instead of taking part in the double spend.
        coins.retain(WalletCoin::is_confirmed);
    }
    let pair = wallet
        .build_conflicting_pair(
            &coins,
            &ConflictRequest {
                to,
                to2,
                amount: Amount::from_base(args.amount),
                fee: args.fee,
                replace: args.replace,
            },
        )
        .map_err(|e| explain_held(e, held))
        .map_err(|e| {
            if cross_node {
                e.context("a double spend across two nodes spends only confirmed coins (both nodes know them); wait for a block")
            } else {
                e
            }
        })?;
    save(&keystore, &wallet)?;

    let first = submit(&node1, &pair.first)?;
    wallet.record_sent(record(
        &wallet,
        &pair.first,
        SentKind::DoubleSpendFirst,
        &first,
    ));
    save(&keystore, &wallet)?;
    let second = match submit(&node2, &pair.second) {
        Ok(answer) => answer,
        Err(e) => {
            writeln!(
                console.err,
                "first {} -> {}: {}",
                pair.first.txid,
                first.node,
                first.text()
            )?;
            return Err(e);
        }
    };
    wallet.record_sent(record(
        &wallet,
        &pair.second,
        SentKind::DoubleSpendSecond,
        &second,
    ));
    save(&keystore, &wallet)?;

    if ctx.json {
        let mut a = built_json(&wallet, &pair.first);
        a["answer"] = first.to_json();
        let mut b = built_json(&wallet, &pair.second);
        b["answer"] = second.to_json();
        return print_json(
            console,
            &json!({
                "coin": {"outpoint": pair.coin.outpoint.to_string(), "amount": pair.coin.output.amount},
                "replace": args.replace,
                "first": a,
                "second": b,
            }),
        );
    }
    let out = &mut console.out;
    writeln!(
        out,
        "coin    {} ({})",
        pair.coin.outpoint, pair.coin.output.amount
    )?;
    for (name, built, answer) in [
        ("first ", &pair.first, &first),
        ("second", &pair.second, &second),
    ] {
        writeln!(out, "{name}  {}  {}", built.txid, describe(&wallet, built))?;
        writeln!(out, "        -> {}: {}", answer.node, answer.text())?;
    }
    Ok(())
}

/// Where a sent transaction stands, as the node knows it.
fn tx_status(rpc: &RpcClient, record: &SentRecord) -> anyhow::Result<(String, Value)> {
    if !record.accepted {
        return Ok((
            format!("rejected by {}: {}", record.node, record.answer),
            json!({"state": "rejected"}),
        ));
    }
    match rpc.call("getrawtransaction", json!([record.txid, true])) {
        Ok(tx) => {
            let confirmations = tx.get("confirmations").and_then(Value::as_i64).unwrap_or(0);
            match tx.get("blockhash").and_then(Value::as_str) {
                Some(block) if confirmations > 0 => Ok((
                    format!("confirmed ({confirmations} confirmations)"),
                    json!({"state": "confirmed", "confirmations": confirmations, "blockhash": block}),
                )),
                _ => Ok(("in the mempool".to_owned(), json!({"state": "mempool"}))),
            }
        }
        Err(e) if e.code() == Some(codes::INVALID_ADDRESS_OR_KEY) => Ok((
            "unknown to the node (replaced, conflicted or dropped)".to_owned(),
            json!({"state": "unknown"}),
        )),
        Err(e) => Err(e.into()),
    }
}

fn cmd_history(ctx: &Session, console: &mut Console<'_>) -> anyhow::Result<()> {
    let (_, wallet) = ctx.open(console)?;
    let rpc = ctx.client()?;
    let snapshot = CoinSnapshot::fetch(&rpc, wallet.params(), &wallet.pubkey_hashes())?;
    let mut sent = Vec::new();
    for record in wallet.sent() {
        let (text, status) = tx_status(&rpc, record)?;
        sent.push((record, text, status));
    }
    let received: Vec<&WalletCoin> = snapshot
        .confirmed
        .values()
        .chain(snapshot.mempool_received.values())
        .collect();
    let kind_of = |coin: &WalletCoin| {
        wallet
            .key_for(&coin.output.address)
            .map_or("?", |k| k.kind().as_str())
    };

    if ctx.json {
        let sent: Vec<Value> = sent
            .iter()
            .map(|(record, _, status)| {
                let mut v = serde_json::to_value(record).expect("records serialise");
                v["status"] = status.clone();
                v
            })
            .collect();
        let received: Vec<Value> = received
            .iter()
            .map(|c| {
                json!({
                    "txid": c.outpoint.txid.to_string(),
                    "vout": c.outpoint.vout,
                    "amount": c.output.amount,
                    "address": wallet.address(&c.output.address),
                    "kind": kind_of(c),
                    "height": c.height,
                    "coinbase": c.coinbase,
                    "mature": snapshot.is_mature(c),
                    "spent_in_mempool": snapshot.mempool_spent.contains(&c.outpoint),
                })
            })
            .collect();
        return print_json(
            console,
            &json!({"height": snapshot.tip_height, "sent": sent, "received": received}),
        );
    }
    let out = &mut console.out;
    writeln!(out, "sent by this wallet:")?;
    if sent.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for (record, status, _) in &sent {
        writeln!(
            out,
            "  {}  {}  {:<19}  -{} to {}, fee {}: {status}",
            utc(record.time),
            record.txid,
            match record.kind {
                SentKind::Payment => "payment",
                SentKind::DoubleSpendFirst => "double-spend first",
                SentKind::DoubleSpendSecond => "double-spend second",
            },
            record.amount,
            record.to,
            record.fee
        )?;
    }
    writeln!(
        out,
        "coins held (unspent outputs to the wallet; the node indexes no spent history):"
    )?;
    if received.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for coin in received {
        let mut notes = vec![kind_of(coin).to_owned()];
        match coin.height {
            Some(h) => notes.push(format!("height {h}")),
            None => notes.push("in the mempool".into()),
        }
        if coin.coinbase {
            notes.push(if snapshot.is_mature(coin) {
                "coinbase".into()
            } else {
                format!(
                    "immature coinbase until height {}",
                    snapshot.spendable_at(coin)
                )
            });
        }
        if snapshot.mempool_spent.contains(&coin.outpoint) {
            notes.push("being spent".into());
        }
        writeln!(
            out,
            "  {}  +{} to {} ({})",
            coin.outpoint,
            coin.output.amount,
            wallet.address(&coin.output.address),
            notes.join(", ")
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (Howard Hinnant's civil-from-days).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_apart_from_other_write_failures() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(
            &anyhow::Error::from(closed).context("printing the txid")
        ));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(!is_broken_pipe(&anyhow::Error::from(full)));
        assert!(!is_broken_pipe(&anyhow::anyhow!("insufficient funds")));
    }
    use clap::{CommandFactory, Parser};

    /// The way `cairn` mounts the wallet.
    #[derive(Debug, Parser)]
    struct Cairn {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Wallet(WalletArgs),
    }

    fn parse(args: &[&str]) -> WalletArgs {
        let Top::Wallet(w) = Cairn::try_parse_from(args).unwrap().command;
        w
    }

    #[test]
    fn command_line_is_well_formed() {
        Cairn::command().debug_assert();
    }

    #[test]
    fn interface_spellings_parse() {
        let w = parse(&["cairn", "wallet", "--wallet", "w.json", "import-dev", "3"]);
        assert_eq!(w.wallet, Some(PathBuf::from("w.json")));
        assert!(matches!(w.command, WalletCommand::ImportDev { index: 3 }));

        let w = parse(&[
            "cairn",
            "wallet",
            "--rpc-url",
            "http://127.0.0.1:1",
            "--cookie",
            "c",
            "send",
            "--to",
            "crt1x",
            "--amount",
            "5",
            "--fee",
            "7",
        ]);
        assert!(matches!(
            w.command,
            WalletCommand::Send {
                amount: 5,
                fee: Some(7),
                ..
            }
        ));

        // Global flags also work after the subcommand.
        let w = parse(&["cairn", "wallet", "balance", "--datadir", "d", "--json"]);
        assert_eq!(w.datadir, Some(PathBuf::from("d")));
        assert!(w.json);

        let w = parse(&[
            "cairn",
            "wallet",
            "double-spend",
            "--to",
            "a",
            "--to2",
            "b",
            "--amount",
            "9",
            "--node",
            "n0",
            "--node2",
            "http://127.0.0.1:2",
            "--replace",
        ]);
        match w.command {
            WalletCommand::DoubleSpend {
                amount,
                node,
                node2,
                replace,
                ..
            } => {
                assert_eq!(amount, 9);
                assert_eq!(node.as_deref(), Some("n0"));
                assert_eq!(node2.as_deref(), Some("http://127.0.0.1:2"));
                assert!(replace);
            }
            other => panic!("{other:?}"),
        }
        for cmd in ["new", "address", "balance", "history"] {
            parse(&["cairn", "wallet", cmd]);
        }
        assert!(
            Cairn::try_parse_from([
                "cairn",
                "wallet",
                "send",
                "--to",
                "a",
                "--amount",
                "1",
                "--fee",
                "1",
                "--fee-rate",
                "2"
            ])
            .is_err()
        );
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01:01");
    }
}
