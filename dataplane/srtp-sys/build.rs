//! Generates bindings to the system libsrtp2 found by pkg-config (`libsrtp2`, 2.3 or
//! newer) and links it as a shared library.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    let lib = pkg_config::Config::new()
        .atleast_version("2.3")
        .probe("libsrtp2")
        .unwrap_or_else(|e| {
            panic!(
                "libsrtp2 not found through pkg-config (libsrtp2 >= 2.3): {e}\n\
                 On Debian 12: apt-get install libsrtp2-dev libclang-dev pkg-config"
            )
        });
    let clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("srtp_.*")
        .allowlist_type("srtp_.*")
        .allowlist_var("SRTP_.*")
        .derive_default(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed to generate libsrtp2 bindings");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");
}
