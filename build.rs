//! With the `mimalloc` feature on Linux, the binaries export mimalloc's
//! malloc family (defined in them by mimalloc's `override`) to the shared
//! libraries they load (OpenSSL, zlib, Cyrus SASL), so that the whole
//! process has one allocator: without this, those libraries keep glibc's
//! while the statically linked C code (librdkafka, zstd) gets mimalloc, and
//! memory freed across that line would reach the wrong allocator.

/// The allocation functions `mimalloc`'s override defines.
const MALLOC_FAMILY: [&str; 12] = [
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "cfree",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let mimalloc = std::env::var_os("CARGO_FEATURE_MIMALLOC").is_some();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if mimalloc && linux {
        for symbol in MALLOC_FAMILY {
            println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
        }
    }
}
