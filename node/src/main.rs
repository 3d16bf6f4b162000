//! `cairn`: the command line of the Cairn node. See `../shared/INTERFACE.md` and README.md.

mod bench;

use anyhow::Context;
use cairn_node::config::{LogFormat, NodeArgs, NodeConfig};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A proof-of-work full node for local testnets: mine, pay, double-spend, fork, reorg."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Node(NodeArgs),
    /// Call a JSON-RPC method of a running node (like bitcoin-cli).
    Rpc(cairn_node::rpc_cli::RpcArgs),
    /// Keys, balances, payments and deliberate double spends.
    Wallet(cairn_wallet::cli::WalletArgs),
    /// A local multi-node testnet: up, status, partition, heal, down.
    Testnet(cairn_lab::testnet::TestnetArgs),
    /// Scenario files: a testnet, a timeline of network events, checked expectations.
    Scenario(cairn_lab::scenario::ScenarioArgs),
    /// Consensus theory measured on real nodes: stale-rate, selfish, double-spend.
    Experiment(cairn_lab::experiment::ExperimentArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// SHA-256d nonce search speed of each kernel against a plain reference measured in the same run.
    Miner(BenchMinerArgs),
    /// Block connection (in-memory store): inputs/s ÷ single-thread k256 verify/s, cold and with a warm signature cache.
    Validate(bench::workload::ChainArgs),
    /// Block connection into rocksdb ÷ into memory, same chain, same run (blocks/s).
    Store(bench::workload::ChainArgs),
    /// Mempool acceptance: txs/s ÷ verify/s; and a block connecting against a full pool.
    Mempool(bench::mempool::MempoolArgs),
    /// Sync between two nodes on loopback ÷ in-memory connect of the same chain (blocks/s).
    Sync(bench::sync::SyncArgs),
    /// Time for a mined block to reach every node of a loopback testnet (median, p95).
    Propagate(bench::propagate::PropagateArgs),
}

#[derive(Args)]
struct BenchMinerArgs {
    /// Worker threads [default: one per core]
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds the chosen kernel runs
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Kernel to report on: avx512, sha-ni, avx2 or portable [default: the fastest available]
    #[arg(long)]
    kernel: Option<String>,
    /// Print one JSON line instead of a table
    #[arg(long)]
    json: bool,
}

fn bench_miner(args: BenchMinerArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        anyhow::bail!("--seconds must be in (0, 3600]");
    }
    let mut config = cairn_miner::BenchConfig {
        duration: std::time::Duration::from_secs_f64(args.seconds),
        kernel: args
            .kernel
            .as_deref()
            .map(cairn_miner::Kernel::from_name_available)
            .transpose()?,
        ..Default::default()
    };
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        config.threads = threads;
    }
    let report = cairn_miner::bench(&config)?;
    if args.json {
        println!("{}", report.to_json_line());
    } else {
        println!("{report}");
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(args) => {
            let config = NodeConfig::resolve(args)?;
            init_logging(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(cairn_node::run(config))
        }
        Command::Rpc(args) => cairn_node::rpc_cli::run(args),
        Command::Wallet(args) => cairn_wallet::cli::run(args),
        Command::Testnet(args) => cairn_lab::testnet::run(args),
        Command::Scenario(args) => cairn_lab::scenario::run(args),
        Command::Experiment(args) => cairn_lab::experiment::run(args),
        Command::Bench(BenchCommand::Miner(args)) => bench_miner(args),
        Command::Bench(BenchCommand::Validate(args)) => {
            bench::print(&bench::validate::run(&args)?, args.json);
            Ok(())
        }
        Command::Bench(BenchCommand::Store(args)) => {
            bench::print(&bench::store::run(&args)?, args.json);
            Ok(())
        }
        Command::Bench(BenchCommand::Mempool(args)) => {
            bench::print(&bench::mempool::run(&args)?, args.json);
            Ok(())
        }
        Command::Bench(BenchCommand::Sync(args)) => {
            bench::print(&bench::sync::run(&args)?, args.json);
            Ok(())
        }
        Command::Bench(BenchCommand::Propagate(args)) => {
            bench::print(&bench::propagate::run(&args)?, args.json);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
