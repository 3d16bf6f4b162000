//! The consensus-bug corpus delivered over p2p (issue 13): one victim `cairn node` with one
//! honest peer, and for each case a fresh test-peer identity that delivers it through the
//! real protocols (gossipsub for blocks, raw frames on the sync stream for the codec). Each
//! case is refused with its own reason, the sender is banned or spared as the table says,
//! and the victim keeps its honest peer, reaches the honest holds no honest block
//! invalid and answers RPC throughout.
//!
//! | case | delivered as | reason (`listbanned` / log) | sender |
//! |---|---|---|---|
//! | value overflow: one output above the money supply (CVE-2010-5139) | gossiped block | `bad-txns-vout-toolarge` | banned |
//! | value overflow: outputs summing past the money supply | gossiped block | `bad-txns-txouttotal-toolarge` | banned |
//! | duplicate inputs in one transaction (CVE-2018-17144) | gossiped block | `bad-txns-inputs-duplicate` | banned |
//! | merkle mutation (CVE-2012-2459): last tx duplicated, header recommitted | gossiped block | `bad-txns-duplicate` | banned |
//! | merkle mutation under the honest header (body `[.., t, t]`) | gossiped block, then the honest block from the honest peer | `bad-txnmrklroot`; the honest block is connected | banned |
//! | 64-byte transaction posing as the tree of an honest block | gossiped block, then the honest block | `bad-txnmrklroot` (leaves and inner nodes hash under different prefixes, so no 64-byte tx is ambiguous; 64-byte txs themselves are valid) | banned |
//! | timestamp not after median-time-past | gossiped block | `time-too-old` | banned |
//! | timewarp: retarget-boundary block more than the grace below its parent (BIP54) | gossiped block | `time-timewarp-attack` | banned |
//! | BIP30: a coinbase copied from an earlier block (same txid) | gossiped block | `bad-cb-height` (BIP34 makes every coinbase txid unique, which is how Cairn enforces BIP30) | banned |
//! | time beyond `max_future_block_time` | gossiped block | `time-too-new` (logged) | spared: may become valid, another clock is no offense (Core does not punish `BLOCK_TIME_FUTURE`) |
//! | bad bits: a target other than the required one | gossiped block | `bad-diffbits` | banned |
//! | huge length prefix inside a gossip payload (a tx count of 2^40) | two gossiped payloads | `malformed message: undecodable block` | banned at the second (50 points each) |
//! | huge length prefix on the sync stream (a frame claiming 4 GiB) | two raw sync frames | `malformed message: frame of 4294967295 bytes exceeds the 16384-byte limit` | banned at the second |
//! | huge length prefix in a sync response (the answer to the node's status request claims 4 GiB) | raw answer | `malformed message: IO error on outbound stream: frame of 4294967295 bytes exceeds the 6356992-byte limit` | scored 50 (not banned for one answer) |
//! | oversized message on the sync stream (a real frame above the request limit) | two raw sync frames | `malformed message: frame of 20000 bytes exceeds the 16384-byte limit` | banned at the second |
//! | oversized block (above `max_block_size`, within gossipsub's limit) | gossiped block | `bad-blk-length` | banned |
//! | gossip message above gossipsub's `max_transmit_size` (from a peer whose gossipsub allows it) | gossiped frame | none: the receiver's gossipsub drops the frame unread (a debug line in libp2p) | unseen, so unpunished; nothing stored |

use crate::byzantine::{
    assert_honest_record, ban_reason, connected, converge, logs, p2p, peer_entry, runtime, submit,
    wait_connected,
};
use crate::harness::{Node, NodeOpts, regtest, wait_until};
use crate::test_peer::{Answers, RawPeer, TestPeer};
use cairn_core::merkle::merkle_root;
use cairn_core::params::dev_secret_key;
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{Amount, Block, BlockHash, OutPoint, Transaction, TxIn, TxOut, Txid, encoding};
use std::time::{Duration, Instant};

// ----- crafting blocks ----------------------------------------------------------------------

/// A block on `parent` with `txs` after the coinbase, changed by `edit`, then mined; the kit
/// does not learn it.
fn craft(
    kit: &mut TestChain,
    parent: &BlockHash,
    txs: Vec<Transaction>,
    edit: impl FnOnce(&mut Block),
) -> Block {
    kit.clock += u64::from(kit.params().block_interval_secs);
    let mut block = kit
        .chain
        .block_template_on(
            parent,
            dev_secret_key(0).pubkey_hash(),
            txs,
            Amount::ZERO,
            kit.clock,
            b"corpus".to_vec(),
        )
        .expect("parent known to the kit");
    edit(&mut block);
    mine(block, kit.params())
}

/// Makes the header commit to the block's transactions as they now are.
fn recommit(block: &mut Block) {
    let wtxids: Vec<_> = block.txs.iter().map(Transaction::wtxid).collect();
    block.header.merkle_root = merkle_root(&wtxids);
}

/// A transaction spending a coin nobody has, with these outputs: only context-free rules
/// can be judged without the coin, and they are what the cases break.
fn ghost(inputs: usize, outputs: Vec<TxOut>) -> Transaction {
    let key = dev_secret_key(7);
    let input = TxIn {
        prevout: OutPoint {
            txid: Txid::from_byte_array([0x42; 32]),
            vout: 0,
        },
        signature: [1; 64],
        public_key: key.public_key(),
    };
    Transaction {
        version: cairn_core::validation::TX_VERSION,
        inputs: vec![input; inputs],
        outputs,
        lock_height: 0,
        data: vec![],
    }
}

fn pay(amount: u64) -> TxOut {
    TxOut {
        amount: Amount::from_base(amount),
        address: dev_secret_key(7).pubkey_hash(),
    }
}

/// A signed spend of dev account `account`'s genesis allocation, paying a fee of 1000.
fn honest_spend(kit: &TestChain, account: u32) -> (Transaction, Amount) {
    let coin = kit.genesis_coin(account);
    let key = dev_secret_key(account);
    let fee = 1000;
    let out = TxOut {
        amount: Amount::from_base(coin.1.output.amount.to_base() - fee),
        address: key.pubkey_hash(),
    };
    (kit.spend(&[coin], &key, vec![out]), Amount::from_base(fee))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ----- delivering a case --------------------------------------------------------------------

/// How a case reaches the victim.
enum Delivery {
    /// Payloads published on the blocks topic, one after another.
    Gossip(Vec<Vec<u8>>),
    /// A payload published on the blocks topic by a peer whose gossipsub sends frames the
    /// node's gossipsub does not accept.
    OversizedGossip(Vec<u8>),
    /// Raw frames written on sync streams.
    Frames(Vec<Vec<u8>>),
    /// Raw bytes written as the answer to the node's own sync requests (its status first).
    Answer(Vec<u8>),
}

/// What the victim must do to the sender.
#[derive(PartialEq, Eq, Debug)]
enum Sentence {
    /// Banned, with the case's reason in `listbanned`.
    Banned,
    /// Not banned, not scored; the reason is logged.
    Spared,
    /// Scored for the offense (the reason is logged) and, short of the ban threshold,
    /// not banned.
    Scored,
    /// Never seen by the node: gossipsub dropped the frame unread, so there is nothing to
    /// judge, store or punish.
    Unseen,
}

struct Case {
    name: &'static str,
    delivery: Delivery,
    reason: &'static str,
    sentence: Sentence,
}

fn gossip_block(block: &Block) -> Delivery {
    Delivery::Gossip(vec![encoding::encode(block)])
}

/// Delivers `case` to `victim` from a fresh identity and checks the sentence; returns how
/// long the victim took to reach it.
fn deliver(rt: &tokio::runtime::Runtime, victim: &Node, case: &Case) -> Duration {
    let started = Instant::now();
    let log_before = victim.log().len();
    let (sender, took) = rt.block_on(async {
        match &case.delivery {
            Delivery::Gossip(payloads) => {
                let mut peer = TestPeer::new(Answers::Silent);
                peer.connect(victim).await;
                let mut sent = Instant::now();
                for (i, payload) in payloads.iter().enumerate() {
                    if i > 0 {
                        peer.pump(Duration::from_millis(300)).await;
                    }
                    sent = Instant::now();
                    peer.publish_block_bytes(payload.clone())
                        .unwrap_or_else(|e| panic!("{}: not published: {e}", case.name));
                }
                let id = peer.id();
                while case.sentence == Sentence::Banned
                    && ban_reason(victim, &id).is_none()
                    && sent.elapsed() < Duration::from_secs(15)
                {
                    peer.pump(Duration::from_millis(10)).await;
                }
                if case.sentence == Sentence::Spared {
                    while !victim.log()[log_before..].contains(case.reason)
                        && sent.elapsed() < Duration::from_secs(15)
                    {
                        peer.pump(Duration::from_millis(10)).await;
                    }
                    // Long enough for a ban to show, had the block been held against us.
                    peer.pump(Duration::from_millis(300)).await;
                    let entry = peer_entry(victim, &id);
                    assert_eq!(
                        entry.map(|p| p["misbehavior"].clone()),
                        Some(serde_json::json!(0)),
                        "{}: the sender was scored or dropped\n{}",
                        case.name,
                        logs(&[victim])
                    );
                }
                (id, sent.elapsed())
            }
            Delivery::Frames(frames) => {
                let mut peer = RawPeer::new();
                peer.send_frames(victim, frames.clone()).await;
                let sent = Instant::now();
                let id = peer.id();
                while ban_reason(victim, &id).is_none() && sent.elapsed() < Duration::from_secs(15)
                {
                    peer.pump(Duration::from_millis(10)).await;
                }
                (id, sent.elapsed())
            }
            Delivery::OversizedGossip(payload) => {
                let mut peer = TestPeer::with_transmit_limit(Answers::Silent, 4 * payload.len());
                peer.connect(victim).await;
                let sent = Instant::now();
                peer.publish_block_bytes(payload.clone())
                    .unwrap_or_else(|e| panic!("{}: not published: {e}", case.name));
                peer.pump(Duration::from_secs(1)).await;
                (peer.id(), sent.elapsed())
            }
            Delivery::Answer(bytes) => {
                let mut peer = RawPeer::answering(bytes.clone());
                peer.send_frames(victim, vec![]).await;
                let sent = Instant::now();
                while !victim.log()[log_before..].contains(case.reason)
                    && sent.elapsed() < Duration::from_secs(15)
                {
                    peer.pump(Duration::from_millis(10)).await;
                }
                (peer.id(), sent.elapsed())
            }
        }
    });
    let reason = ban_reason(victim, &sender);
    match case.sentence {
        Sentence::Banned => {
            let reason = reason
                .unwrap_or_else(|| panic!("{}: sender not banned\n{}", case.name, logs(&[victim])));
            assert!(
                reason.contains(case.reason),
                "{}: banned for {reason:?}, expected {:?}",
                case.name,
                case.reason
            );
        }
        Sentence::Unseen => {
            assert_eq!(reason, None, "{}: sender banned", case.name);
            let block: Block = match &case.delivery {
                Delivery::OversizedGossip(payload) => encoding::decode(payload).expect("a block"),
                _ => unreachable!("only oversized gossip goes unseen"),
            };
            let hash = block.block_hash().to_string();
            assert!(
                victim
                    .try_rpc("getblock", serde_json::json!([hash, 1]))
                    .is_err(),
                "{}: the block was stored",
                case.name
            );
            assert!(
                !victim.log()[log_before..].contains(&hash),
                "{}: the node saw the block",
                case.name
            );
        }
        Sentence::Spared | Sentence::Scored => {
            assert_eq!(reason, None, "{}: sender banned", case.name);
            let log = victim.log();
            let line = log[log_before..].lines().find(|l| l.contains(case.reason));
            let line = line.unwrap_or_else(|| {
                panic!(
                    "{}: {:?} not logged\n{}",
                    case.name,
                    case.reason,
                    logs(&[victim])
                )
            });
            eprintln!("  logged: {line}");
        }
    }
    eprintln!(
        "{:<58} {:?} {took:?} after the last message ({:?} with connecting)",
        case.name,
        case.sentence,
        started.elapsed()
    );
    took
}

/// Checks what must hold after every case: the honest peer is still there and unbanned,
/// RPC answers.
fn assert_victim_whole(victim: &Node, honest: &Node, case: &Case) {
    assert!(
        connected(victim, honest),
        "{}: the honest peer was dropped\n{}",
        case.name,
        logs(&[victim])
    );
    assert_eq!(ban_reason(victim, &honest.peer_id), None, "{}", case.name);
    assert!(victim.height() > 0, "RPC answers");
}

// ----- the corpus ---------------------------------------------------------------------------

/// Cases on the current tip `parent` that break a block or transaction rule.
fn rule_cases(kit: &mut TestChain, parent: &BlockHash, earlier: &Block) -> Vec<Case> {
    let max = kit.params().max_money.to_base();
    let median_time = {
        let mut times: Vec<u32> = Vec::new();
        let mut hash = *parent;
        while times.len() < 11 {
            let entry = kit.chain.entry(&hash).expect("kit knows its chain");
            times.push(entry.header.time);
            hash = entry.header.prev_blockhash;
        }
        times.sort();
        times[5]
    };
    let required_bits = kit.chain.entry(parent).expect("tip").header.bits;
    let harder = cairn_core::pow::CompactTarget(required_bits.0 - 0x0001_0000);
    let copied_coinbase = earlier.txs[0].clone();
    let oversized = ghost(1, vec![pay(1); 36_000]);
    let drift = u64::from(kit.params().max_future_block_time_secs);
    let future = u32::try_from(unix_now() + drift + 600).expect("time fits");
    vec![
        Case {
            name: "value overflow: an output above the money supply",
            delivery: gossip_block(&craft(
                kit,
                parent,
                vec![ghost(1, vec![pay(max + 1)])],
                recommit_only,
            )),
            reason: "bad-txns-vout-toolarge",
            sentence: Sentence::Banned,
        },
        Case {
            name: "value overflow: outputs summing past the money supply",
            delivery: gossip_block(&craft(
                kit,
                parent,
                vec![ghost(1, vec![pay(max), pay(max)])],
                recommit_only,
            )),
            reason: "bad-txns-txouttotal-toolarge",
            sentence: Sentence::Banned,
        },
        Case {
            name: "duplicate inputs in one transaction",
            delivery: gossip_block(&craft(
                kit,
                parent,
                vec![ghost(2, vec![pay(1_000)])],
                recommit_only,
            )),
            reason: "bad-txns-inputs-duplicate",
            sentence: Sentence::Banned,
        },
        Case {
            name: "timestamp not after median-time-past",
            delivery: gossip_block(&craft(kit, parent, vec![], |b| b.header.time = median_time)),
            reason: "time-too-old",
            sentence: Sentence::Banned,
        },
        Case {
            name: "BIP30: a coinbase copied from an earlier block",
            delivery: gossip_block(&craft(kit, parent, vec![], |b| {
                b.txs[0] = copied_coinbase;
                recommit(b);
            })),
            reason: "bad-cb-height",
            sentence: Sentence::Banned,
        },
        Case {
            name: "time beyond max_future_block_time",
            delivery: gossip_block(&craft(kit, parent, vec![], |b| b.header.time = future)),
            reason: "time-too-new",
            sentence: Sentence::Spared,
        },
        Case {
            name: "bad bits: a harder target than required",
            delivery: gossip_block(&craft(kit, parent, vec![], |b| b.header.bits = harder)),
            reason: "bad-diffbits",
            sentence: Sentence::Banned,
        },
        Case {
            name: "oversized block (above max_block_size)",
            delivery: gossip_block(&craft(kit, parent, vec![oversized], recommit_only)),
            reason: "bad-blk-length",
            sentence: Sentence::Banned,
        },
        Case {
            name: "gossip message above gossipsub's max_transmit_size",
            delivery: Delivery::OversizedGossip(encoding::encode(&craft(
                kit,
                parent,
                vec![ghost(1, vec![pay(1); 40_000])],
                recommit_only,
            ))),
            reason: "",
            sentence: Sentence::Unseen,
        },
        Case {
            name: "huge length prefix inside a gossip payload",
            delivery: Delivery::Gossip(
                (0..2u8)
                    .map(|i| {
                        let block = craft(kit, parent, vec![], recommit_only);
                        let mut bytes = encoding::encode(&block);
                        let at = encoding::encoded_size(&block.header);
                        bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                        bytes.push(i);
                        bytes
                    })
                    .collect(),
            ),
            reason: "malformed message: undecodable block",
            sentence: Sentence::Banned,
        },
        Case {
            name: "huge length prefix on the sync stream (4 GiB)",
            delivery: Delivery::Frames(vec![frame_claiming(u32::MAX, 64); 2]),
            reason: "malformed message: frame of 4294967295 bytes exceeds the 16384-byte limit",
            sentence: Sentence::Banned,
        },
        Case {
            name: "huge length prefix in a sync response (4 GiB)",
            delivery: Delivery::Answer(frame_claiming(u32::MAX, 64)),
            reason: "malformed message: IO error on outbound stream: frame of 4294967295 bytes exceeds",
            sentence: Sentence::Scored,
        },
        Case {
            name: "oversized message on the sync stream",
            delivery: Delivery::Frames(vec![frame_claiming(20_000, 20_000); 2]),
            reason: "malformed message: frame of 20000 bytes exceeds the 16384-byte limit",
            sentence: Sentence::Banned,
        },
    ]
}

fn recommit_only(block: &mut Block) {
    recommit(block);
}

/// A sync frame whose prefix says `claimed` bytes, followed by `body` zero bytes.
fn frame_claiming(claimed: u32, body: usize) -> Vec<u8> {
    let mut frame = claimed.to_le_bytes().to_vec();
    frame.resize(4 + body, 0);
    frame
}

#[test]
fn consensus_bug_corpus_over_p2p_is_refused_reason_by_reason() {
    let victim = Node::start(NodeOpts::default());
    let honest = Node::start(NodeOpts {
        peers: vec![p2p(&victim)],
        ..Default::default()
    });
    wait_connected(&victim, &honest);
    let mut kit = TestChain::new(regtest());
    // The chain stops one short of a retarget boundary, its last block well ahead of the
    // ones before, so a boundary block can sit below its parent by more than the grace and
    // still be after the median time past.
    let window = kit.params().retarget_window as usize;
    let mut chain = kit.build_chain(window - 2);
    kit.clock += 600;
    chain.extend(kit.build_chain(1));
    for block in &chain {
        submit(&honest, block);
    }
    converge(&[&victim, &honest]);
    let rt = runtime();
    let mut attacker_blocks = Vec::new();
    let run = |cases: Vec<Case>, attacker_blocks: &mut Vec<String>| {
        for case in cases {
            if let Delivery::Gossip(payloads) = &case.delivery {
                for payload in payloads {
                    if let Ok(block) = encoding::decode::<Block>(payload) {
                        attacker_blocks.push(block.block_hash().to_string());
                    }
                }
            }
            deliver(&rt, &victim, &case);
            assert_victim_whole(&victim, &honest, &case);
        }
    };

    let parent = chain.last().expect("built").block_hash();
    let parent_time = chain.last().expect("built").header.time;
    let grace = kit.params().timewarp_grace_secs;
    let timewarp = Case {
        name: "timewarp: boundary block beyond the grace below its parent",
        delivery: gossip_block(&craft(&mut kit, &parent, vec![], |b| {
            b.header.time = parent_time - grace - 1;
        })),
        reason: "time-timewarp-attack",
        sentence: Sentence::Banned,
    };
    run(vec![timewarp], &mut attacker_blocks);
    let cases = rule_cases(&mut kit, &parent, &chain[4]);
    run(cases, &mut attacker_blocks);

    // Mutated bodies come first, the honest block after them: it must still connect.
    let (t1, fee1) = honest_spend(&kit, 1);
    let (t2, fee2) = honest_spend(&kit, 2);
    let fees = fee1.checked_add(fee2).expect("small");
    let honest_block = kit.block_on(&parent, vec![t1, t2.clone()], fees);
    let recommitted = {
        let mut b = honest_block.clone();
        b.txs.push(t2.clone());
        recommit(&mut b);
        mine(b, kit.params())
    };
    let mut mutated = honest_block.clone();
    mutated.txs.push(t2);
    run(
        vec![
            Case {
                name: "merkle mutation: last tx duplicated, header recommitted",
                delivery: gossip_block(&recommitted),
                reason: "bad-txns-duplicate",
                sentence: Sentence::Banned,
            },
            Case {
                name: "merkle mutation under the honest header",
                delivery: gossip_block(&mutated),
                reason: "bad-txnmrklroot",
                sentence: Sentence::Banned,
            },
        ],
        &mut attacker_blocks,
    );
    attacker_blocks.retain(|h| *h != honest_block.block_hash().to_string());
    submit(&honest, &honest_block);
    assert_eq!(
        converge(&[&victim, &honest]),
        honest_block.block_hash().to_string()
    );

    // A 64-byte transaction (a coinbase with four bytes of data) in place of the tree.
    let (t3, fee3) = honest_spend(&kit, 3);
    let next = kit.block_on(&honest_block.block_hash(), vec![t3], fee3);
    let mut posing = next.clone();
    let mut short = next.txs[0].clone();
    short.data = vec![0; 4];
    assert_eq!(short.encoded_size(), 64, "a 64-byte transaction");
    posing.txs = vec![short];
    run(
        vec![Case {
            name: "64-byte transaction posing as the honest tree",
            delivery: gossip_block(&posing),
            reason: "bad-txnmrklroot",
            sentence: Sentence::Banned,
        }],
        &mut attacker_blocks,
    );
    attacker_blocks.retain(|h| *h != next.block_hash().to_string());
    submit(&honest, &next);
    assert_eq!(converge(&[&victim, &honest]), next.block_hash().to_string());

    // The honest peer still relays to the victim, which holds nothing honest invalid.
    let mined = honest.generate(1);
    assert!(
        wait_until(Duration::from_secs(30), || victim.tip() == mined[0]),
        "{}",
        logs(&[&victim, &honest])
    );
    assert_honest_record(&victim, &[&honest], &attacker_blocks);
}
