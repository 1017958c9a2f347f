//! Build script: compiles the C shim `csrc/av_glue.c` against the libavcodec
//! and libavutil headers found with pkg-config, then links those libraries.
//!
//! The shim archive is emitted before the libav libraries so that linkers
//! running with `--as-needed` see its references first.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/av_glue.c");
    println!("cargo:rerun-if-changed=csrc/av_glue.h");

    let libs: Vec<pkg_config::Library> = [
        ("libavcodec", "59"),
        ("libavutil", "57"),
        ("libswscale", "6"),
    ]
    .into_iter()
    .map(|(name, min_version)| {
        pkg_config::Config::new()
            .atleast_version(min_version)
            .cargo_metadata(false)
            .probe(name)
            .unwrap_or_else(|e| panic!("pkg-config: {name} >= {min_version} not found: {e}"))
    })
    .collect();

    let mut build = cc::Build::new();
    build
        .file("csrc/av_glue.c")
        .include("csrc")
        .flag("-std=c11")
        .warnings(true)
        .extra_warnings(true);
    for path in libs.iter().flat_map(|lib| &lib.include_paths) {
        build.include(path);
    }
    build.compile("pf_av_glue");

    for lib in &libs {
        for path in &lib.link_paths {
            println!("cargo:rustc-link-search=native={}", path.display());
        }
        for name in &lib.libs {
            println!("cargo:rustc-link-lib={name}");
        }
    }

    // Intel ISA-L: SIMD GF(2^8) kernels for the GameStream-compatible Reed–Solomon code.
    if pkg_config::probe_library("libisal").is_err() {
        println!("cargo:rustc-link-lib=isal");
    }

    // Opus and PulseAudio: a second small shim (fixed-argument wrappers for variadic ctl calls,
    // compile-time checks of the layouts mirrored in Rust).
    println!("cargo:rerun-if-changed=csrc/audio_glue.c");
    let audio_libs: Vec<pkg_config::Library> = [
        ("opus", Some("1.0")),
        ("libpulse-simple", None),
        ("libpulse", None),
    ]
    .into_iter()
    .map(|(name, min)| {
        let mut config = pkg_config::Config::new();
        config.cargo_metadata(false);
        if let Some(version) = min {
            config.atleast_version(version);
        }
        config
            .probe(name)
            .unwrap_or_else(|e| panic!("pkg-config: {name}: {e}"))
    })
    .collect();
    let mut audio = cc::Build::new();
    audio
        .file("csrc/audio_glue.c")
        .flag("-std=c11")
        .warnings(true)
        .extra_warnings(true);
    for path in audio_libs.iter().flat_map(|lib| &lib.include_paths) {
        audio.include(path);
    }
    audio.compile("pf_audio_glue");
    for lib in &audio_libs {
        for path in &lib.link_paths {
            println!("cargo:rustc-link-search=native={}", path.display());
        }
        for name in &lib.libs {
            println!("cargo:rustc-link-lib={name}");
        }
    }

    // Xlib + MIT-SHM for X11 capture, XTEST for input injection (libX11 1.6 / libXext 1.3 /
    // libXtst 1.2 are the oldest the bindings target).
    for (name, min_version) in [("x11", "1.6"), ("xext", "1.3"), ("xtst", "1.2")] {
        let lib = pkg_config::Config::new()
            .atleast_version(min_version)
            .cargo_metadata(false)
            .probe(name)
            .unwrap_or_else(|e| panic!("pkg-config: {name} >= {min_version} not found: {e}"));
        for path in &lib.link_paths {
            println!("cargo:rustc-link-search=native={}", path.display());
        }
        for name in &lib.libs {
            println!("cargo:rustc-link-lib={name}");
        }
    }
}
