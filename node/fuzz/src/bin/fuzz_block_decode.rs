//! AFL++ entry point of the `block_decode` target ([`cairn_fuzz::targets::block_decode`]); built by
//! `scripts/fuzz.sh block_decode` with `cargo afl build --features afl`.

fn main() {
    cairn_fuzz::targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::targets::block_decode(data);
    });
}
