//! AFL++ entry point of the `block_accept` target ([`cairn_fuzz::targets::block_accept`]); built by
//! `scripts/fuzz.sh block_accept` with `cargo afl build --features afl`.

fn main() {
    cairn_fuzz::targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::targets::block_accept(data);
    });
}
