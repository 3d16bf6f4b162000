//! Seed inputs made from real encodings: the fixed chain's blocks, signed spends, framed sync
//! messages and a request for every RPC method. `cargo run -p cairn-fuzz --bin seed` writes
//! them out; `scripts/fuzz.sh` starts each run from them plus the committed corpus, and the
//! smoke tests replay them.
//!
//! Everything is deterministic (the test chain's clock starts at genesis, signatures are
//! RFC 6979), so the same seeds come out on every machine.

use crate::targets::accept::{FIXED_HEIGHT, fixture};
use crate::targets::decode::params;
use crate::targets::p2p::{GOSSIP_BLOCK, GOSSIP_TX, SYNC_REQUEST, SYNC_RESPONSE};
use cairn_core::testkit::TestChain;
use cairn_core::{Amount, Block, Transaction, TxOut, encoding};
use cairn_node::network::codec::write_frame;
use cairn_node::network::protocol::{
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL_VERSION, Status, SyncRequest, SyncResponse,
    USER_AGENT,
};
use cairn_node::rpc::registry::METHODS;
use serde_json::{Value, json};

/// A named seed input.
pub type Seed = (String, Vec<u8>);

/// A well-formed libp2p peer id, for the network methods' parameters.
const PEER_ID: &str = "12D3KooWDSajMA4zRCo5RGtrPM6GxXRDJ4wcJPrEfq74m5Wpw49s";

/// Real blocks and transactions built on the fixed chain.
struct Material {
    /// The fixed chain's builder, advanced past it by the blocks below.
    builder: TestChain,
    /// A block on the fixed tip spending a genesis coin into two outputs.
    spend_block: Block,
    /// The spend it carries.
    spend: Transaction,
    /// A spend with several outputs and a data payload (not mined).
    data_spend: Transaction,
}

fn material() -> Material {
    let mut builder = TestChain::new(params().clone());
    let blocks = builder.build_chain(FIXED_HEIGHT as usize);
    assert_eq!(
        blocks,
        fixture().blocks,
        "the builder reproduces the fixed chain"
    );
    let tip = builder.chain.tip().hash;
    let (outpoint, coin) = builder.genesis_coin(1);
    let key = builder.key(1);
    let fee = Amount::from_base(10_000);
    let half = Amount::from_base(coin.output.amount.to_base() / 2);
    let rest = coin
        .output
        .amount
        .checked_sub(half)
        .and_then(|r| r.checked_sub(fee))
        .expect("a genesis allocation covers the fee");
    let spend = builder.spend(
        &[(outpoint, coin)],
        &key,
        vec![
            TxOut {
                amount: half,
                address: builder.key(2).pubkey_hash(),
            },
            TxOut {
                amount: rest,
                address: key.pubkey_hash(),
            },
        ],
    );
    let spend_block = builder.block_on(&tip, vec![spend.clone()], fee);
    let (outpoint, coin) = builder.genesis_coin(3);
    let amount = coin.output.amount;
    let key3 = builder.key(3);
    let mut outputs: Vec<TxOut> = (0..4)
        .map(|i| TxOut {
            amount: Amount::from_base(1_000_000 + i),
            address: builder.key(i as u32).pubkey_hash(),
        })
        .collect();
    outputs[0].amount = Amount::from_base(amount.to_base() / 2);
    let mut data_spend = builder.spend(&[(outpoint, coin)], &key3, outputs);
    data_spend.data = b"cairn fuzz seed".to_vec();
    data_spend.sign(&params().network_magic, &[(amount, &key3)]);
    Material {
        builder,
        spend_block,
        spend,
        data_spend,
    }
}

/// The seeds of the target called `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Seed> {
    let mut m = material();
    match name {
        "block_decode" => block_seeds(&m),
        "tx_decode" => tx_seeds(&m),
        "p2p_frame" => p2p_seeds(&m),
        "rpc_request" => rpc_seeds(&m),
        "block_accept" => accept_seeds(&mut m),
        _ => Vec::new(),
    }
}

fn block_seeds(m: &Material) -> Vec<Seed> {
    let mut out = vec![seed("genesis", &params().genesis_block)];
    for (i, block) in fixture().blocks.iter().enumerate() {
        out.push(seed(&format!("block{}", i + 1), block));
    }
    out.push(seed("spend_block", &m.spend_block));
    out
}

fn tx_seeds(m: &Material) -> Vec<Seed> {
    vec![
        seed("genesis_alloc", &params().genesis_block.txs[0]),
        seed("coinbase", &fixture().blocks[0].txs[0]),
        seed("spend", &m.spend),
        seed("data_spend", &m.data_spend),
        seed("spend_block_coinbase", &m.spend_block.txs[0]),
    ]
}

fn p2p_seeds(m: &Material) -> Vec<Seed> {
    let tip = m
        .builder
        .chain
        .entry(&fixture().blocks[2].block_hash())
        .expect("block 3");
    let status = Status {
        protocol_version: PROTOCOL_VERSION,
        network_id: params().network_id.clone(),
        genesis_hash: params().genesis_hash,
        params_hash: params().params_hash,
        best_hash: tip.hash,
        best_height: tip.height,
        chainwork: tip.chainwork,
        user_agent: USER_AGENT.into(),
    };
    let hashes: Vec<_> = fixture().blocks.iter().map(Block::block_hash).collect();
    let requests = [
        ("status", SyncRequest::Status(status.clone())),
        (
            "getheaders",
            SyncRequest::GetHeaders {
                locator: hashes.iter().rev().copied().collect(),
                stop: Some(hashes[1]),
            },
        ),
        ("getblocks", SyncRequest::GetBlocks(hashes.clone())),
    ];
    let responses = [
        ("status", SyncResponse::Status(status)),
        (
            "headers",
            SyncResponse::Headers(fixture().blocks.iter().map(|b| b.header).collect()),
        ),
        (
            "blocks",
            SyncResponse::Blocks(vec![fixture().blocks[0].clone(), m.spend_block.clone()]),
        ),
        ("refused", SyncResponse::Refused("rate limited".into())),
    ];
    let mut out = vec![
        channel(
            "gossip_block",
            GOSSIP_BLOCK,
            encoding::encode(&m.spend_block),
        ),
        channel("gossip_tx", GOSSIP_TX, encoding::encode(&m.spend)),
    ];
    for (name, request) in &requests {
        let framed = frame(request, MAX_REQUEST_BYTES);
        out.push(channel(&format!("request_{name}"), SYNC_REQUEST, framed));
    }
    for (name, response) in &responses {
        let framed = frame(response, MAX_RESPONSE_BYTES);
        out.push(channel(&format!("response_{name}"), SYNC_RESPONSE, framed));
    }
    out
}

fn rpc_seeds(m: &Material) -> Vec<Seed> {
    let block_hash = fixture().blocks[1].block_hash().to_string();
    let address = params().address(&m.builder.key(0).pubkey_hash());
    let tx_hex = hex::encode(encoding::encode(&m.spend));
    let mut out = Vec::new();
    for method in METHODS {
        let params = match method.name {
            "getblockhash" => json!([1]),
            "getblock" => json!([block_hash, 2]),
            "getblocktree" => json!([0]),
            "getrawmempool" => json!([true]),
            "sendrawtransaction" => json!([tx_hex]),
            "testmempoolaccept" => json!([[tx_hex]]),
            "getrawtransaction" => json!([m.spend.txid().to_string(), true]),
            "getaddressutxos" | "getaddressmempool" => json!([address]),
            "getbalance" => json!([address, 1]),
            "submitblock" => json!([hex::encode(encoding::encode(&m.spend_block))]),
            "generate" => json!([2, address]),
            "setmining" => json!([true, 1]),
            "sethashrate" => json!(["250k"]),
            "invalidateblock" | "reconsiderblock" => json!([block_hash]),
            "addnode" => json!(["/ip4/127.0.0.1/tcp/18444", "onetry"]),
            "disconnectnode" | "getlinkshaping" => json!([PEER_ID]),
            "setban" => json!([PEER_ID, "add", 3600, false]),
            "setnetworkactive" => json!([false]),
            "setlinkshaping" => json!([
                PEER_ID,
                {"latency_ms": 50, "jitter_ms": 5, "loss_pct": 1, "bandwidth_kbit": 1000}
            ]),
            "help" => json!(["getblock"]),
            _ => json!([]),
        };
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method.name, "params": params});
        out.push(json_seed(method.name, &request));
    }
    let envelopes = [
        (
            "v1_style",
            json!({"id": "a", "method": "getblock", "params": [block_hash]}),
        ),
        (
            "notification",
            json!({"jsonrpc": "2.0", "method": "getblockcount"}),
        ),
        (
            "batch",
            json!([
                {"jsonrpc": "2.0", "id": 1, "method": "getblockhash", "params": [0]},
                {"jsonrpc": "2.0", "id": 2, "method": "nosuchmethod"},
                7
            ]),
        ),
        (
            "named_params",
            json!({"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": {"height": 1}}),
        ),
    ];
    for (name, request) in &envelopes {
        out.push(json_seed(name, request));
    }
    out
}

fn accept_seeds(m: &mut Material) -> Vec<Seed> {
    let hashes: Vec<_> = fixture().blocks.iter().map(Block::block_hash).collect();
    let genesis = params().genesis_hash;
    let mut out = vec![
        seed("extend_with_spend", &m.spend_block),
        seed("known_block3", &fixture().blocks[2]),
    ];
    let builder = &mut m.builder;
    let cases = [
        ("extend_empty", hashes[2]),
        ("fork_at_2", hashes[1]),
        ("fork_at_1", hashes[0]),
        ("on_genesis", genesis),
    ];
    for (name, parent) in cases {
        let block = builder.block_on(&parent, vec![], Amount::ZERO);
        out.push(seed(name, &block));
    }
    let fee = Amount::from_base(10_000);
    let two = builder.block_on(&hashes[2], vec![m.data_spend.clone()], fee);
    out.push(seed("extend_with_data_spend", &two));
    out
}

fn seed<T: bincode::Encode>(name: &str, value: &T) -> Seed {
    (name.to_owned(), encoding::encode(value))
}

fn json_seed(name: &str, value: &Value) -> Seed {
    (name.to_owned(), value.to_string().into_bytes())
}

fn channel(name: &str, channel: u8, payload: Vec<u8>) -> Seed {
    let mut bytes = vec![channel];
    bytes.extend(payload);
    (name.to_owned(), bytes)
}

fn frame<T: bincode::Encode>(value: &T, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    futures::executor::block_on(write_frame(
        &mut futures::io::Cursor::new(&mut out),
        value,
        limit,
    ))
    .expect("seed messages are within the protocol's limits");
    out
}

/// An AFL++ dictionary for `name` (`-x`), or `None` when byte mutations do as well.
pub fn dictionary(name: &str) -> Option<String> {
    if name != "rpc_request" {
        return None;
    }
    let mut tokens: Vec<String> = ["jsonrpc", "2.0", "method", "params", "id", "null", "true"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    tokens.extend(METHODS.iter().map(|m| m.name.to_string()));
    let lines: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| format!("t{i}=\"{t}\""))
        .collect();
    Some(lines.join("\n") + "\n")
}
