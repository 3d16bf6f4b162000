//! A stand-in for `cairn node`'s JSON-RPC server: the wallet's methods over real HTTP on
//! 127.0.0.1, with cookie auth, `node.json` and `.cookie` in a temp datadir, and a mempool
//! that enforces `cairn-core`'s transaction rules, conflicts and replace-by-fee. It lets the
//! wallet's command line be tested end to end before (and independently of) the node.

use cairn_core::validation::{check_transaction, check_tx_inputs, verify_tx_signatures};
use cairn_core::{Amount, ChainParams, Coin, OutPoint, Transaction, TxOut, Txid, encoding};
use cairn_rpc::types::{AddressUtxo, BlockchainInfo};
use cairn_rpc::{COOKIE_USER, Cookie, NodeInfo, codes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The cookie secret every fake node uses.
pub const SECRET: &str = "00112233445566778899aabbccddeeff";

/// The state of the fake chain and mempool.
pub struct State {
    pub params: ChainParams,
    pub height: u32,
    pub utxos: BTreeMap<OutPoint, Coin>,
    /// txid → (tx, fee, spent coins)
    pub mempool: BTreeMap<Txid, (Transaction, Amount)>,
    /// txid → height it was mined at
    pub mined: HashMap<Txid, u32>,
    /// Every call, method name only.
    pub calls: Vec<String>,
}

/// A running fake node.
pub struct FakeNode {
    pub state: Arc<Mutex<State>>,
    pub url: String,
    pub datadir: tempfile::TempDir,
}

impl FakeNode {
    /// A node of `params` whose chain is the genesis block plus `height` empty blocks.
    pub fn start(params: ChainParams, height: u32) -> FakeNode {
        let mut utxos = BTreeMap::new();
        let coinbase = &params.genesis_block.txs[0];
        let txid = coinbase.txid();
        for (vout, output) in coinbase.outputs.iter().enumerate() {
            utxos.insert(
                OutPoint {
                    txid,
                    vout: vout as u32,
                },
                // As cairn-core: the genesis outputs are the premine, spendable at once.
                Coin {
                    output: *output,
                    height: 0,
                    is_coinbase: false,
                },
            );
        }
        let state = Arc::new(Mutex::new(State {
            params,
            height,
            utxos,
            mempool: BTreeMap::new(),
            mined: HashMap::new(),
            calls: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = served.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        let datadir = tempfile::tempdir().unwrap();
        NodeInfo {
            rpc: addr.to_string(),
            p2p: Vec::new(),
            peer_id: "fake".into(),
            pid: 1,
            metrics: None,
        }
        .write(datadir.path())
        .unwrap();
        std::fs::write(
            cairn_rpc::auth::cookie_path(datadir.path()),
            format!("{COOKIE_USER}:{SECRET}"),
        )
        .unwrap();
        FakeNode {
            state,
            url: format!("http://{addr}"),
            datadir,
        }
    }

    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    pub fn cookie_file(&self) -> PathBuf {
        self.datadir.path().join(".cookie")
    }

    /// Adds a coin to the UTXO set.
    pub fn add_coin(&self, outpoint: OutPoint, coin: Coin) {
        self.state.lock().unwrap().utxos.insert(outpoint, coin);
    }

    /// Mines every mempool transaction into one block.
    pub fn mine(&self) {
        let mut s = self.state.lock().unwrap();
        s.height += 1;
        let height = s.height;
        let txs: Vec<(Txid, Transaction)> = std::mem::take(&mut s.mempool)
            .into_iter()
            .map(|(id, (tx, _))| (id, tx))
            .collect();
        // Parents before children: retry until every transaction connected.
        let mut pending = txs;
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(txid, tx)| {
                if !tx.inputs.iter().all(|i| s.utxos.contains_key(&i.prevout)) {
                    return true;
                }
                for input in &tx.inputs {
                    s.utxos.remove(&input.prevout);
                }
                for (vout, output) in tx.outputs.iter().enumerate() {
                    s.utxos.insert(
                        OutPoint {
                            txid: *txid,
                            vout: vout as u32,
                        },
                        Coin {
                            output: *output,
                            height,
                            is_coinbase: false,
                        },
                    );
                }
                s.mined.insert(*txid, height);
                false
            });
            assert!(pending.len() < before, "mempool holds unconnectable txs");
        }
    }

    pub fn mempool_txids(&self) -> Vec<Txid> {
        self.state.lock().unwrap().mempool.keys().copied().collect()
    }

    pub fn mempool_tx(&self, txid: &Txid) -> Option<Transaction> {
        self.state
            .lock()
            .unwrap()
            .mempool
            .get(txid)
            .map(|(tx, _)| tx.clone())
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    let mut content_length = 0usize;
    let mut authorized = false;
    let expected = Cookie {
        user: COOKIE_USER.into(),
        password: SECRET.into(),
    }
    .header();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().unwrap_or(0),
                "authorization" => authorized = value == expected,
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, body) = if !authorized {
        (401, String::new())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(calls)) => {
                let answers: Vec<Value> = calls.iter().map(|c| answer(c, state).1).collect();
                (200, Value::Array(answers).to_string())
            }
            Ok(call) => {
                let (status, v) = answer(&call, state);
                (status, v.to_string())
            }
            Err(_) => (400, "not json".into()),
        }
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// One JSON-RPC call → (HTTP status, response object). Errors use HTTP 500, as Bitcoin
/// Core does, to exercise the client's reading of error bodies.
fn answer(call: &Value, state: &Mutex<State>) -> (u16, Value) {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let method = call.get("method").and_then(Value::as_str).unwrap_or("");
    let params = call
        .get("params")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.calls.push(method.to_owned());
    match dispatch(&mut s, method, &params) {
        Ok(result) => (200, json!({"jsonrpc": "2.0", "id": id, "result": result})),
        Err((code, message)) => (
            500,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        ),
    }
}

type RpcResult = Result<Value, (i64, String)>;

fn address_param(s: &State, params: &[Value]) -> Result<cairn_core::PubkeyHash, (i64, String)> {
    let text = params
        .first()
        .and_then(Value::as_str)
        .ok_or((codes::INVALID_PARAMS, "address expected".to_owned()))?;
    s.params
        .parse_address(text)
        .map_err(|e| (codes::INVALID_ADDRESS_OR_KEY, e.to_string()))
}

fn dispatch(s: &mut State, method: &str, params: &[Value]) -> RpcResult {
    match method {
        "getblockchaininfo" => Ok(json!(BlockchainInfo {
            chain: s.params.network_id.clone(),
            blocks: s.height,
            headers: s.height as usize + 1,
            bestblockhash: "00".repeat(32),
            chainwork: "00".into(),
            difficulty: 1.0,
            mediantime: 0,
            time: 0,
            hrp: s.params.hrp.clone(),
            coinbase_maturity: s.params.coinbase_maturity,
            genesis: s.params.genesis_hash.to_string(),
            orphans: 0,
        })),
        "getblockhash" => Ok(json!(s.params.genesis_hash.to_string())),
        "getaddressutxos" => {
            let wanted = address_param(s, params)?;
            Ok(Value::Array(
                s.utxos
                    .iter()
                    .filter(|(_, c)| c.output.address == wanted)
                    .map(|(o, c)| {
                        json!(AddressUtxo {
                            txid: o.txid.to_string(),
                            vout: o.vout,
                            amount: c.output.amount.to_base(),
                            height: c.height,
                            coinbase: c.is_coinbase,
                        })
                    })
                    .collect(),
            ))
        }
        "getaddressmempool" => {
            let wanted = address_param(s, params)?;
            let mut spent = Vec::new();
            let mut received = Vec::new();
            for (txid, (tx, _)) in &s.mempool {
                for input in &tx.inputs {
                    if lookup(s, &input.prevout).is_some_and(|c| c.output.address == wanted) {
                        spent.push(json!({"txid": input.prevout.txid.to_string(), "vout": input.prevout.vout}));
                    }
                }
                for (vout, output) in tx.outputs.iter().enumerate() {
                    if output.address == wanted {
                        received.push(json!({"txid": txid.to_string(), "vout": vout,
                                             "amount": output.amount.to_base()}));
                    }
                }
            }
            Ok(json!({"spent": spent, "received": received}))
        }
        "getrawtransaction" => {
            let txid: Txid = params
                .first()
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok())
                .ok_or((codes::INVALID_PARAMS, "txid expected".to_owned()))?;
            if s.mempool.contains_key(&txid) {
                return Ok(json!({"txid": txid.to_string()}));
            }
            match s.mined.get(&txid) {
                Some(h) => Ok(
                    json!({"txid": txid.to_string(), "blockhash": "11".repeat(32),
                                     "confirmations": s.height - h + 1}),
                ),
                None => Err((
                    codes::INVALID_ADDRESS_OR_KEY,
                    "No such mempool or blockchain transaction".into(),
                )),
            }
        }
        "sendrawtransaction" => {
            let hex_str = params
                .first()
                .and_then(Value::as_str)
                .ok_or((codes::INVALID_PARAMS, "hex expected".to_owned()))?;
            let bytes = hex::decode(hex_str).map_err(|e| {
                (
                    codes::DESERIALIZATION_ERROR,
                    format!("TX decode failed: {e}"),
                )
            })?;
            let tx: Transaction = encoding::decode(&bytes).map_err(|e| {
                (
                    codes::DESERIALIZATION_ERROR,
                    format!("TX decode failed: {e}"),
                )
            })?;
            accept(s, tx)
        }
        _ => Err((
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    }
}

/// A coin from the UTXO set or a mempool output.
fn lookup(s: &State, outpoint: &OutPoint) -> Option<Coin> {
    if let Some(c) = s.utxos.get(outpoint) {
        return Some(*c);
    }
    let (tx, _) = s.mempool.get(&outpoint.txid)?;
    let output: &TxOut = tx.outputs.get(outpoint.vout as usize)?;
    Some(Coin {
        output: *output,
        height: s.height + 1,
        is_coinbase: false,
    })
}

fn reject(reason: &str) -> (i64, String) {
    (codes::VERIFY_REJECTED, reason.to_owned())
}

fn accept(s: &mut State, tx: Transaction) -> RpcResult {
    let txid = tx.txid();
    if s.mempool.contains_key(&txid) {
        return Err(reject("txn-already-known"));
    }
    check_transaction(&tx, &s.params).map_err(|e| reject(e.reject_reason()))?;
    let conflicts: Vec<Txid> = s
        .mempool
        .iter()
        .filter(|(_, (other, _))| {
            other
                .inputs
                .iter()
                .any(|o| tx.inputs.iter().any(|i| i.prevout == o.prevout))
        })
        .map(|(id, _)| *id)
        .collect();
    let mut spent = Vec::new();
    for input in &tx.inputs {
        spent.push(
            lookup(s, &input.prevout).ok_or_else(|| reject("bad-txns-inputs-missingorspent"))?,
        );
    }
    let fee = check_tx_inputs(&tx, &spent, s.height + 1, &s.params)
        .map_err(|e| reject(e.reject_reason()))?;
    verify_tx_signatures(&tx, &spent, &s.params).map_err(|e| reject(e.reject_reason()))?;
    let size = tx.encoded_size() as u64;
    if fee.to_base() < size {
        return Err(reject("min relay fee not met"));
    }
    // Full replace-by-fee: strictly more fee than everything replaced (plus one unit per
    // byte) and a strictly higher rate than each conflict.
    if !conflicts.is_empty() {
        let replaced_fee: u64 = conflicts.iter().map(|c| s.mempool[c].1.to_base()).sum();
        let better_rate = conflicts.iter().all(|c| {
            let (old, old_fee) = &s.mempool[c];
            u128::from(fee.to_base()) * old.encoded_size() as u128
                > u128::from(old_fee.to_base()) * size as u128
        });
        if fee.to_base() < replaced_fee + size || !better_rate {
            return Err(reject("txn-mempool-conflict"));
        }
        for c in conflicts {
            s.mempool.remove(&c);
        }
    }
    s.mempool.insert(txid, (tx, fee));
    Ok(json!(txid.to_string()))
}
