//! AFL++ entry point of the `rpc_request` target ([`cairn_fuzz::targets::rpc_request`]); built by
//! `scripts/fuzz.sh rpc_request` with `cargo afl build --features afl`.

fn main() {
    cairn_fuzz::targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::targets::rpc_request(data);
    });
}
