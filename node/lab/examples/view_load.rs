//! Serves the fork view over a synthetic testnet of 10 nodes × 5,000 blocks held in memory,
//! to measure the page at the size it must stay smooth at:
//!
//! ```text
//! cargo run --release -p cairn-lab --example view_load              # serve; open the URL
//! cargo run --release -p cairn-lab --example view_load -- --measure # headless Chromium
//! ... -- --measure --stale-every 5   # 1,000 forks: more rows than the page draws at once
//! ```
//!
//! The page records on its `<svg>` how long the last fetch and drawing took and how many
//! rows and elements it drew; `--measure` opens `/?from=0` (every block of every node) in
//! headless Chromium through chromedriver, and prints those figures for the first drawing,
//! for a refresh as an event triggers it, and for a drawing scrolled to the middle.

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use cairn_lab::view::source::{BlockBody, NodeSource, SourceError, Summary, TxSpends};
use cairn_rpc::types::{BlockStatus, BlockTree};
use std::sync::Arc;

/// One synthetic node: a fixed tree.
struct Synthetic {
    name: String,
    tree: BlockTree,
}

impl NodeSource for Synthetic {
    fn name(&self) -> &str {
        &self.name
    }

    fn summary(&self) -> Result<Summary, SourceError> {
        Ok(Summary {
            tip: self.tree.tip.clone(),
            height: self.tree.height,
            headers: self.tree.blocks.len(),
        })
    }

    fn tree(&self, from: u32) -> Result<BlockTree, SourceError> {
        Ok(BlockTree {
            from,
            blocks: self
                .tree
                .blocks
                .iter()
                .filter(|b| b.height >= from)
                .cloned()
                .collect(),
            ..self.tree.clone()
        })
    }

    fn block(&self, hash: &str) -> Result<Option<BlockBody>, SourceError> {
        Ok(self
            .tree
            .blocks
            .iter()
            .find(|b| b.hash == hash)
            .map(|b| BlockBody {
                hash: b.hash.clone(),
                parent: b.parent.clone(),
                height: b.height,
                time: b.time,
                bits: "207fffff".into(),
                nonce: 0,
                txs: vec![TxSpends {
                    txid: format!("{:0>64}", b.height),
                    spends: vec![],
                }],
            }))
    }

    fn confirmations(&self, hash: &str) -> Result<u32, SourceError> {
        Ok(self
            .tree
            .blocks
            .iter()
            .find(|b| b.hash == hash && b.status == BlockStatus::Active)
            .map_or(0, |b| self.tree.height - b.height + 1))
    }

    fn mempool(&self) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }

    fn banned(&self) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new()) // a synthetic chain of honest miners bans nobody
    }

    fn tx(&self, _txid: &str) -> Result<Option<TxSpends>, SourceError> {
        Ok(None)
    }

    fn events(&self) -> Option<(String, String)> {
        None
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measure_page = args.iter().any(|a| a == "--measure");
    let stale_every: u32 = match args.iter().position(|a| a == "--stale-every") {
        Some(i) => args
            .get(i + 1)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(synthetic::STALE_EVERY),
        None => synthetic::STALE_EVERY,
    };
    let addr = args
        .iter()
        .find(|a| a.contains(':'))
        .map_or("127.0.0.1:0", String::as_str)
        .parse()?;
    let sources: Vec<Arc<dyn NodeSource>> = synthetic::trees_with(stale_every)
        .into_iter()
        .enumerate()
        .map(|(k, tree)| {
            Arc::new(Synthetic {
                name: format!("node{k}"),
                tree,
            }) as Arc<dyn NodeSource>
        })
        .collect();
    eprintln!(
        "{} nodes x {} blocks, a stale fork every {} heights",
        synthetic::NODES,
        synthetic::BLOCKS,
        stale_every
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if !measure_page {
        return runtime.block_on(cairn_lab::view::serve(sources, addr));
    }
    let listener = std::net::TcpListener::bind(addr)?;
    let url = format!("http://{}/", listener.local_addr()?);
    let model = cairn_lab::view::model::Model::new(sources);
    runtime.block_on(async {
        model.spawn_followers();
        while !model.ready() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(
            async move { axum::serve(listener, cairn_lab::view::server::router(model)).await },
        );
        anyhow::Ok(())
    })?;
    let report = std::thread::spawn(move || measure(&url)).join();
    match report {
        Ok(result) => result,
        Err(_) => anyhow::bail!("the measurement panicked"),
    }
}

/// Drives headless Chromium over chromedriver's WebDriver API and prints the page's figures.
fn measure(url: &str) -> anyhow::Result<()> {
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut driver = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while agent.get(format!("{base}/status")).call().is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let post = |path: &str, body: Value| -> anyhow::Result<Value> {
        let mut r = agent.post(format!("{base}{path}")).send_json(&body)?;
        Ok(r.body_mut().read_json::<Value>()?["value"].clone())
    };
    let profile = std::env::temp_dir().join(format!("cairn-view-load-{}", std::process::id()));
    let session = post(
        "/session",
        json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "pageLoadStrategy": "eager",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": ["--headless",
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.display())]}}}}),
    )?["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let run = |script: &str| {
        post(
            &format!("/session/{session}/execute/sync"),
            json!({"script": script, "args": []}),
        )
    };
    let stats = "const s = document.getElementById('tree').dataset; \
        return s.renderMs ? {render_ms: +s.renderMs, fetch_ms: +s.fetchMs, rows: +s.rows, \
        drawn_rows: +s.drawnRows, elements: +s.elements} : null;";
    let opened = Instant::now();
    post(
        &format!("/session/{session}/url"),
        json!({"url": format!("{url}?from=0")}),
    )?;
    let first = loop {
        let v = run(stats)?;
        if !v.is_null() {
            break v;
        }
        anyhow::ensure!(
            opened.elapsed() < Duration::from_secs(60),
            "the page never drew"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "first drawing {} ms after navigation: {first}",
        opened.elapsed().as_millis()
    );
    let mut refreshes = Vec::new();
    for _ in 0..5 {
        let v = post(
            &format!("/session/{session}/execute/async"),
            json!({"script": "const done = arguments[0]; \
                const go = () => { if (state.inflight) return setTimeout(go, 5); \
                  const t = performance.now(); refresh().then(() => done(performance.now() - t)); }; \
                go();", "args": []}),
        )?;
        refreshes.push(v.as_f64().unwrap_or(f64::NAN));
    }
    println!("refresh (fetch /api/tree?from=0, lay out, draw), 5 runs, ms: {refreshes:.1?}");
    println!("after the last refresh: {}", run(stats)?);
    run(
        "const p = document.getElementById('tree-pane'); p.scrollTop = p.scrollHeight / 2; renderTree();",
    )?;
    println!("scrolled to the middle: {}", run(stats)?);
    let _ = agent.delete(format!("{base}/session/{session}")).call();
    let _ = driver.kill();
    let _ = driver.wait();
    let _ = std::fs::remove_dir_all(profile);
    Ok(())
}
