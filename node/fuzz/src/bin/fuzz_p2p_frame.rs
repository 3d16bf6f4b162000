//! AFL++ entry point of the `p2p_frame` target ([`cairn_fuzz::targets::p2p_frame`]); built by
//! `scripts/fuzz.sh p2p_frame` with `cargo afl build --features afl`.

fn main() {
    cairn_fuzz::targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::targets::p2p_frame(data);
    });
}
