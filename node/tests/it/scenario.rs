//! `cairn scenario run`, as a user runs it: the shipped scenarios of `scripts/scenarios/`
//! pass, an expectation that cannot hold fails with exit 1 naming it, and the JSON report
//! has every INTERFACE key. Runs are serialised (each starts 3–4 nodes on a shared machine)
//! and bounded: a run that overstays is killed and its testnet stopped.

use crate::harness::cairn_bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most one scenario run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// One scenario run at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/scenarios")
        .join(format!("{name}.toml"))
}

/// Runs `cairn scenario run FILE --dir <temp> --json`; kills it (and stops its testnet) if
/// it outlasts [`RUN_TIMEOUT`].
fn run_scenario(file: &Path) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(cairn_bin())
        .args(["scenario", "run"])
        .arg(file)
        .arg("--dir")
        .arg(dir.path())
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cairn scenario run");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = Command::new(cairn_bin())
                .args(["testnet", "--dir"])
                .arg(dir.path().join("testnet"))
                .arg("down")
                .output();
            panic!("{} ran longer than {RUN_TIMEOUT:?}", file.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("collect output")
}

fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): stdout {stdout:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs a shipped scenario and requires exit 0 with every expectation held.
fn passes(name: &str) -> Value {
    let out = run_scenario(&shipped(name));
    let report = report(&out);
    assert!(
        out.status.success(),
        "{name} failed ({:?}): {}\n{report:#}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["ok"], true, "{report:#}");
    report
}

#[test]
fn partition_heal_scenario_reorganises_the_minority_and_converges() {
    let r = passes("partition-heal");
    assert_eq!(r["stale_blocks"], 2, "{r:#}");
    assert_eq!(r["blocks_by_node"]["node0"], 5, "{r:#}");
    assert!(
        r["reorg_depths"].as_array().unwrap().contains(&2.into()),
        "{r:#}"
    );
}

#[test]
fn double_spend_across_partition_scenario_keeps_exactly_one() {
    let r = passes("double-spend-across-partition");
    assert_eq!(r["stale_blocks"], 1, "{r:#}");
}

#[test]
fn node_crash_and_rejoin_scenario_catches_up() {
    let r = passes("node-crash-and-rejoin");
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{r:#}");
}

#[test]
fn eclipse_scenario_recovers_the_eclipsed_node() {
    let r = passes("eclipse");
    assert!(
        r["stale_blocks"].as_u64().unwrap() >= 1,
        "node3's own block: {r:#}"
    );
}

#[test]
fn latency_forks_scenario_measures_propagation_and_stale_blocks() {
    let r = passes("latency-forks");
    // Every block crossed at least one 300 ms link.
    let p50 = r["propagation_ms"]["p50"]
        .as_f64()
        .expect("propagation measured");
    assert!(p50 >= 250.0, "{r:#}");
}

#[test]
fn an_expectation_that_cannot_hold_fails_with_exit_1_and_the_report_has_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("impossible.toml");
    std::fs::write(
        &file,
        "[testnet]\nnodes = 2\n\n[[step]]\naction = \"generate\"\nnode = \"node1\"\n\n\
         [[expect]]\nkind = \"min_height\"\nheight = 1\n\n\
         [[expect]]\nname = \"a thousand blocks\"\nkind = \"min_height\"\nheight = 1000\n",
    )
    .unwrap();
    let out = run_scenario(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error:") && stderr.contains("a thousand blocks"),
        "{stderr}"
    );
    let r = report(&out);
    for key in [
        "blocks_by_node",
        "stale_blocks",
        "stale_rate",
        "reorg_depths",
        "convergence_secs",
        "propagation_ms",
        "expectations",
    ] {
        assert!(r.get(key).is_some(), "no {key}: {r:#}");
    }
    assert!(r["propagation_ms"].get("p50").is_some() && r["propagation_ms"].get("p95").is_some());
    let expectations = r["expectations"].as_array().unwrap();
    assert_eq!(expectations.len(), 2);
    assert_eq!(expectations[0]["ok"], true, "{r:#}");
    assert_eq!(expectations[1]["name"], "a thousand blocks");
    assert_eq!(expectations[1]["ok"], false);
    assert!(
        expectations[1]["detail"].as_str().unwrap().contains("at 1"),
        "{r:#}"
    );
    assert_eq!(r["blocks_by_node"]["node1"], 1, "{r:#}");
}

#[test]
fn a_bad_file_fails_before_any_node_starts_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[testnet]\nnodes = 2\n\n[[step]]\naction = \"kill\"\nnode = \"node5\"\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = run_scenario(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step 1 (line 4), field `node`") && stderr.contains("node5"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn byzantine_scenario_bans_the_invalid_miner_and_the_honest_nodes_agree() {
    let r = passes("byzantine-invalid-blocks");
    let expectations = r["expectations"].as_array().unwrap();
    let banned = expectations
        .iter()
        .find(|e| e["name"].as_str().unwrap_or_default().contains("banned"))
        .expect("the banned expectation is reported");
    assert_eq!(banned["detail"], "banned by node0, node1", "{r:#}");
}
