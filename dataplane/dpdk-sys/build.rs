//! Generates bindings to the system DPDK found by pkg-config (`libdpdk`, 22.11 or newer),
//! compiles the static-inline wrappers bindgen emits plus our shim with the same flags,
//! and links DPDK as shared libraries (PMDs load from DPDK's plugin directory).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK not found through pkg-config (libdpdk >= 22.11): {e}\n\
                 On Debian 12: apt-get install dpdk-dev libdpdk-dev libclang-dev pkg-config"
            )
        });

    // `pkg-config --cflags libdpdk` carries `-include rte_config.h`, `-march=...` and the
    // include directories; bindgen and the C compiler both get exactly these.
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let mut clang_args: Vec<String> = match cflags {
        Some(c) if !c.is_empty() => c.split_whitespace().map(str::to_owned).collect(),
        _ => cflags_from_command(),
    };
    if clang_args.is_empty() {
        clang_args = dpdk
            .include_paths
            .iter()
            .map(|p| format!("-I{}", p.display()))
            .collect();
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrap_src = out.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("rte_.*")
        .allowlist_function("tutti_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RING_F_.*")
        // Packed-and-aligned types that bindgen cannot lay out: keep them opaque so the
        // layout tests stay on for everything else.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .clang_macro_fallback()
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrap_src)
        .derive_default(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed to generate DPDK bindings");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrap_src.with_extension("c"))
        .file("shim.c")
        .include(env::current_dir().expect("cwd"))
        .warnings(false);
    for flag in &clang_args {
        build.flag(flag);
    }
    build.compile("tutti_dpdk_shim");
}

fn cflags_from_command() -> Vec<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("running pkg-config --cflags libdpdk");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
