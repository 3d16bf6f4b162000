//! `cairn bench sync` and `cairn bench propagate` on tiny workloads: they start their own
//! nodes, finish, clean up, and print the JSON the figures are read from.

use crate::harness::cairn_bin;
use serde_json::Value;
use std::process::Command;

/// Runs `cairn bench ARGS --json`; its one JSON line.
fn bench(args: &[&str]) -> Value {
    let output = Command::new(cairn_bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run cairn bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cairn bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn positive(report: &Value, key: &str) -> f64 {
    let value = report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {report}"));
    assert!(value > 0.0, "{key} = {value} in {report}");
    value
}

#[test]
fn bench_sync_syncs_a_small_chain_between_two_nodes_and_reports_ratios() {
    let report = bench(&["sync", "--blocks", "60", "--runs", "1"]);
    assert_eq!(report["bench"], "sync");
    assert_eq!(report["blocks"], 60);
    let ratio = positive(&report, "ratio_to_reference");
    let synced = positive(&report, "blocks_per_sec_sync");
    let reference = positive(&report, "reference_per_sec");
    assert!((ratio - synced / reference).abs() < 0.01 * ratio.max(0.01) + 0.001);
    assert!(report["reference"].as_str().is_some());
    positive(&report, "disk_sync_write_ms");
}

#[test]
fn bench_propagate_times_blocks_across_a_small_testnet() {
    let report = bench(&["propagate", "--nodes", "3", "--rounds", "3"]);
    assert_eq!(report["bench"], "propagate");
    let median = positive(&report, "median_ms");
    let p95 = positive(&report, "p95_ms");
    assert!(p95 >= median, "{report}");
    positive(&report, "ratio_to_reference");
    positive(&report, "rtt_ms");
    assert!(report["reference"].as_str().is_some());
}

#[test]
fn bench_sync_refuses_a_chain_too_short_to_sync() {
    let output = Command::new(cairn_bin())
        .args(["bench", "sync", "--blocks", "1"])
        .output()
        .expect("run cairn bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--blocks must be in 2..=100000"),
        "{stderr}"
    );
}

#[test]
fn bench_validate_reports_its_ratios_against_references_measured_in_the_run() {
    let report = bench(&[
        "validate",
        "--blocks",
        "2",
        "--txs-per-block",
        "40",
        "--runs",
        "1",
    ]);
    assert_eq!(report["bench"], "validate");
    assert!(
        report["reference"]
            .as_str()
            .is_some_and(|r| r.contains("distinct signatures")),
        "{report}"
    );
    let reference = positive(&report, "reference_per_sec");
    let cold = positive(&report, "inputs_per_sec");
    let ratio = positive(&report, "ratio_to_reference");
    // One run: the ratio is that run's rate over that run's reference.
    assert!((ratio - cold / reference).abs() < 1e-2 * ratio, "{report}");
    for key in [
        "ratio_sequential",
        "ratio_warm_sigcache",
        "ratio_to_one_signature",
        "reference_one_signature_per_sec",
        "verify_all_threads_ratio",
        "ratio_of_ceiling",
    ] {
        positive(&report, key);
    }
}

#[test]
fn bench_store_counts_the_coin_records_the_utxo_cache_kept_off_the_disk() {
    let report = bench(&[
        "store",
        "--blocks",
        "3",
        "--txs-per-block",
        "20",
        "--runs",
        "1",
    ]);
    assert_eq!(report["bench"], "store");
    positive(&report, "ratio_to_reference");
    positive(&report, "reference_per_sec");
    let cached = positive(&report, "coin_records_written");
    let through = positive(&report, "coin_records_written_no_cache");
    assert!(
        cached < through,
        "coins created and spent between flushes never reach rocksdb: {report}"
    );
}
