//! `cairn testnet` and the scenario scripts of `scripts/`, run exactly as a user would
//! (on the regtest genesis so blocks are instant).

use crate::harness::{cairn_bin, regtest_genesis};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("node/ has a parent")
        .to_path_buf()
}

/// Runs a scenario script against a fresh testnet directory; returns its output and wall time.
fn scenario(script: &str) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .env("CAIRN", cairn_bin())
        .env("DIR", dir.path().join("devnet"))
        .env("GENESIS", regtest_genesis())
        .env_remove("KEEP")
        .env_remove("CAIRN_DATADIR")
        .output()
        .expect("run scenario");
    let elapsed = started.elapsed();
    // Whatever happened, nothing may be left running.
    let _ = Command::new(cairn_bin())
        .args(["testnet", "--dir"])
        .arg(dir.path().join("devnet"))
        .arg("down")
        .output();
    (out, elapsed)
}

fn assert_scenario(script: &str) {
    let (out, elapsed) = scenario(script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed after {elapsed:?}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("== OK:"),
        "{script} did not report success:\n{stdout}"
    );
    eprintln!("{script}: {:.1} s", elapsed.as_secs_f64());
}

#[test]
fn demo_payment_is_confirmed_on_every_node() {
    assert_scenario("demo.sh");
}

#[test]
fn double_spend_is_refused_then_resolved_across_a_partition() {
    assert_scenario("double-spend.sh");
}

#[test]
fn fork_resolves_to_the_heavier_chain_after_heal() {
    assert_scenario("fork.sh");
}

#[test]
fn byzantine_node_mining_invalid_blocks_is_banned_and_the_honest_nodes_agree() {
    assert_scenario("byzantine.sh");
}

fn testnet(dir: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .arg("testnet")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run cairn testnet")
}

fn pids(dir: &Path) -> Vec<u32> {
    let devnet: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("devnet.json")).expect("devnet.json"))
            .expect("json");
    devnet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap() as u32)
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn up_twice_is_refused_and_down_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let genesis = regtest_genesis().to_str().unwrap().to_owned();
    let up = testnet(&dir, &["up", "-n", "2", "--genesis", &genesis]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let running = pids(&dir);
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|p| alive(*p)));

    let again = testnet(&dir, &["up", "-n", "2", "--genesis", &genesis]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is already up"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // `--dir` after the subcommand works too.
    let status = Command::new(cairn_bin())
        .args(["testnet", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("node1"));

    // Blocks mined now must survive a down/up cycle.
    let node0 = dir.join("node0");
    let mined = Command::new(cairn_bin())
        .args(["rpc", "--datadir"])
        .arg(&node0)
        .args(["generate", "3"])
        .output()
        .unwrap();
    assert!(
        mined.status.success(),
        "{}",
        String::from_utf8_lossy(&mined.stderr)
    );

    // A crashed node does not stop `down` from stopping the others.
    Command::new("kill")
        .args(["-9", &running[1].to_string()])
        .status()
        .unwrap();
    let down = testnet(&dir, &["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(running.iter().all(|p| !alive(*p)), "a node survived `down`");

    // `up` on a stopped testnet resumes the nodes on their chains.
    let again = testnet(&dir, &["up", "-n", "2", "--genesis", &genesis]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let count = Command::new(cairn_bin())
        .args(["rpc", "--datadir"])
        .arg(&node0)
        .arg("getblockcount")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "3");
    let resumed = pids(&dir);
    assert!(testnet(&dir, &["down"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while resumed.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        resumed.iter().all(|p| !alive(*p)),
        "a resumed node survived `down`"
    );
}

#[test]
fn up_on_a_busy_port_or_a_foreign_directory_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let out = testnet(
        &tmp.path().join("devnet"),
        &["up", "-n", "1", "--port-base", &port.to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{stderr}"
    );

    let foreign = tmp.path().join("home");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let out = testnet(&foreign, &["up", "-n", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a cairn testnet directory"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine",
        "nothing touched"
    );
}
