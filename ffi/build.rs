//! Gives the Linux shared library its SONAME, `libtradeauth.so.0`, so programs linked with
//! `-ltradeauth` record `NEEDED libtradeauth.so.0` and keep working when a compatible
//! `libtradeauth.so.0.x.y` replaces the installed one (see ffi/install.sh).
//!
//! No version script is passed here on purpose: rustc already links every cdylib with its
//! own anonymous version script that exports exactly the `#[no_mangle]` functions (all
//! `tradeauth_*`) and makes everything else local. GNU ld refuses a second script next to
//! it ("anonymous version tag cannot be combined with other version tags"), which would
//! break builds that use it (the MSRV toolchain, aarch64, `-C linker-features=-lld`), and
//! rust-lld accepts one but its wildcards lose to rustc's exact names, so it would change
//! nothing. scripts/test_c.sh checks with `nm -D` that only `tradeauth_*` is exported.

/// The ABI number in the SONAME. Bumped by hand on an incompatible ABI change (a removed
/// or changed function or type), independently of the crate version, so that programs
/// built against the old ABI fail at load time instead of misbehaving.
const SONAME: &str = "libtradeauth.so.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target, not the host: what matters is the linker the library is built with.
    // macOS (install_name) and Windows (DLL names) have their own schemes and GNU ld's
    // -soname means nothing to their linkers.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
    }
}
