//! Byzantine finding 5: a majority miner stamping times at the edges of the time bounds.
//!
//! The attacker mines every block. It stamps each window's last block as far in the future
//! as the node's clock allows and the next window's first block as far back as the BIP54
//! grace allows, so every window measures more time than it took. Its hash rate is constant:
//! a block takes `block_interval_secs` at the initial difficulty and proportionally less
//! once the difficulty drops, so the chain's real pace follows what the attack achieved.

use crate::support::accept_active;
use cairn_core::chain::ImportOutcome;
use cairn_core::testkit::{TestChain, mine};
use cairn_core::{Amount, BlockError, ChainParams, Target};

/// The dev network's timing (60-block windows of 5 s and its time bounds) at a difficulty a
/// test mines in microseconds: 256 hashes per block, 128 times harder than the limit, so a
/// collapse has room to show.
fn devnet_timing() -> ChainParams {
    let mut c = ChainParams::devnet().config;
    c.initial_bits = "2000ffff".into();
    ChainParams::from_config(c).expect("the dev network at another initial difficulty")
}

/// What the attack did to each retarget: the target of every window, oldest first, and the
/// latest time stamped relative to the node's clock.
struct AttackOutcome {
    targets: Vec<Target>,
    most_ahead_secs: i64,
}

/// The attacker mines `windows` full windows on `params` and returns the targets.
fn mount_timewarp(params: &ChainParams, windows: u32) -> AttackOutcome {
    let mut kit = TestChain::new(params.clone());
    let window = params.retarget_window;
    let interval = f64::from(params.block_interval_secs);
    let genesis_time = u64::from(params.genesis_block.header.time);
    let initial = params.difficulty(&Target::from_compact(params.initial_bits).expect("valid"));
    let mut elapsed = 0.0f64;
    let mut targets = vec![Target::from_compact(params.initial_bits).expect("valid")];
    let mut most_ahead_secs = i64::MIN;
    for height in 1..=windows * window {
        let parent = kit.chain.tip().hash;
        let bits = kit.chain.next_bits(&parent).expect("tip is indexed");
        let target = Target::from_compact(bits).expect("valid bits");
        if height % window == 0 {
            targets.push(target);
        }
        elapsed += interval * params.difficulty(&target) / initial;
        let now = genesis_time + elapsed as u64;
        let earliest = u64::from(kit.chain.min_next_time(&parent).expect("tip is indexed"));
        let stamp = if height % window == window - 1 {
            let too_far = now + 2 * 60 * 60;
            if too_far > now + u64::from(params.max_future_block_time_secs) {
                let block = block_at(&mut kit, params, too_far, height);
                let report = kit.chain.accept_block(block, now).expect("memory store");
                assert!(
                    matches!(
                        report.outcome,
                        ImportOutcome::Invalid(BlockError::TimeTooNew { .. })
                    ),
                    "{:?}",
                    report.outcome
                );
            }
            now + u64::from(params.max_future_block_time_secs)
        } else if height % window == 0 {
            earliest
        } else {
            now.max(earliest)
        };
        let block = block_at(&mut kit, params, stamp, height);
        assert_eq!(u64::from(block.header.time), stamp.max(earliest));
        most_ahead_secs = most_ahead_secs.max(i64::from(block.header.time) - now as i64);
        accept_active(&mut kit.chain, &block, now);
    }
    AttackOutcome {
        targets,
        most_ahead_secs,
    }
}

/// A mined empty block on the tip stamped `time` (or the earliest time allowed, if later).
fn block_at(kit: &mut TestChain, params: &ChainParams, time: u64, salt: u32) -> cairn_core::Block {
    let parent = kit.chain.tip().hash;
    let template = kit
        .chain
        .block_template_on(
            &parent,
            kit.key(0).pubkey_hash(),
            vec![],
            Amount::ZERO,
            time,
            salt.to_le_bytes().to_vec(),
        )
        .expect("parent is indexed");
    mine(template, params)
}

/// How much easier `later` is than `earlier`.
fn easing(params: &ChainParams, earlier: &Target, later: &Target) -> f64 {
    params.difficulty(earlier) / params.difficulty(later)
}

#[test]
fn majority_miner_stamping_times_at_the_bounds_cannot_collapse_the_difficulty() {
    let params = devnet_timing();
    let window = u64::from(params.retarget_window);
    let interval = u64::from(params.block_interval_secs);
    let expected = (window - 1) * interval;
    let grace = u64::from(params.timewarp_grace_secs);
    let future = u64::from(params.max_future_block_time_secs);
    let outcome = mount_timewarp(&params, 5);
    let targets = &outcome.targets;
    assert_eq!(targets.len(), 6);

    // One window can gain at most the future limit plus the grace over its expected span
    // (×1.41 on the dev network): far from the ×4 clamp that the old 7200-second bounds let
    // the attacker take at every retarget.
    let step_bound = (expected + future + grace) as f64 / expected as f64;
    for (i, pair) in targets.windows(2).enumerate() {
        let step = easing(&params, &pair[0], &pair[1]);
        assert!(
            step <= step_bound.min(1.5),
            "retarget {} eased the difficulty ×{step:.3} (bound ×{step_bound:.3})",
            i + 1
        );
    }
    // Sustained, each window measures its real span plus the grace (and the one interval it
    // skips back over), so the difficulty settles where `window` blocks take
    // `expected - grace` (×1.277 easier on the dev network): a bounded speed-up, not a
    // collapse.
    let settled = (window * interval) as f64 / (expected as f64 - grace as f64);
    let total = easing(&params, &targets[0], targets.last().expect("six targets"));
    assert!(
        total <= 1.3 && total <= settled * 1.01,
        "the difficulty fell ×{total:.3} (the attack's fixed point: ×{settled:.3})"
    );
    assert!(
        total > 1.1,
        "the attack did ease the difficulty (×{total:.3})"
    );
    assert!(
        outcome.most_ahead_secs <= future as i64,
        "no block ran more than the future limit ahead of the clock"
    );
}

#[test]
fn genesis_file_with_two_hour_time_bounds_on_a_five_second_chain_is_rejected() {
    let json = cairn_core::params::DEVNET_GENESIS_JSON;
    for field in ["timewarp_grace_secs", "max_future_block_time_secs"] {
        let mut config: serde_json::Value = serde_json::from_str(json).expect("json");
        config[field] = serde_json::json!(7200);
        let err = ChainParams::from_json(&config.to_string())
            .expect_err("7200 s against a 295-second window");
        assert!(
            matches!(err, cairn_core::params::ParamsError::Field { field: f, .. } if f == field),
            "{err}"
        );
        let text = err.to_string();
        for part in [
            field,
            "7200 s",
            "bound of 73 s",
            "expected timespan of 295 s",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }
}
