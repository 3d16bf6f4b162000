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
use crate::keystore::{KdfParams, Keystore, WalletFile, WalletLock};
use crate::rpc::RpcClient;
use crate::wallet::Wallet;
use anyhow::{Context, bail};
use cairn_core::{Amount, ChainParams, PubkeyHash};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

mod accounts;
mod history;
mod send;

pub use accounts::import_dev_into;
use accounts::{cmd_address, cmd_balance, cmd_import_dev, cmd_new};
use history::cmd_history;
use send::{DoubleSpendArgs, cmd_double_spend, cmd_send};

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
}
