//! The miner benchmark from the command line, as `cairn bench miner` runs it:
//!
//! ```text
//! cargo run --release -p cairn-miner --example bench -- [--threads N] [--seconds S] [--kernel NAME] [--json]
//! ```

use cairn_miner::{BenchConfig, Kernel, bench};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = BenchConfig::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--threads" => {
                config.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--seconds" => {
                let seconds: f64 = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
                config.duration =
                    Duration::try_from_secs_f64(seconds).map_err(|e| format!("--seconds: {e}"))?;
            }
            "--kernel" => {
                config.kernel =
                    Some(Kernel::from_name_available(&value()?).map_err(|e| e.to_string())?)
            }
            "--json" => json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let report = bench(&config).map_err(|e| e.to_string())?;
    if json {
        println!("{}", report.to_json_line());
    } else {
        println!("{report}");
    }
    Ok(())
}
