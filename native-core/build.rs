//! Build script: links libavcodec/libavutil (found with pkg-config) and
//! compiles the C shim `csrc/av_glue.c` against the same headers.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/av_glue.c");
    println!("cargo:rerun-if-changed=csrc/av_glue.h");

    let mut include_paths = Vec::new();
    for (name, min_version) in [("libavcodec", "59"), ("libavutil", "57")] {
        let lib = pkg_config::Config::new()
            .atleast_version(min_version)
            .probe(name)
            .unwrap_or_else(|e| panic!("pkg-config could not find {name} >= {min_version}: {e}"));
        include_paths.extend(lib.include_paths);
    }

    let mut build = cc::Build::new();
    build
        .file("csrc/av_glue.c")
        .include("csrc")
        .flag_if_supported("-std=c11")
        .warnings(true)
        .extra_warnings(true);
    for path in &include_paths {
        build.include(path);
    }
    build.compile("pf_av_glue");
}
