//! AFL++ entry point of the `tx_decode` target ([`cairn_fuzz::targets::tx_decode`]); built by
//! `scripts/fuzz.sh tx_decode` with `cargo afl build --features afl`.

fn main() {
    cairn_fuzz::targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::targets::tx_decode(data);
    });
}
