//! `librocksdb-sys` links the C++ runtime only when it compiles RocksDB itself; with
//! `ROCKSDB_LIB_DIR` (scripts/fuzz.sh lets the instrumented build reuse an already built
//! `librocksdb.a`) nobody does, so the fuzzer binaries link it here.

fn main() {
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    if std::env::var_os("ROCKSDB_LIB_DIR").is_some() {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}
