//! Turns `cri/api.proto` into `src/gen/runtime.v1.rs` with the pure-Rust
//! `protox` compiler and `tonic-prost-build`, so no `protoc` is needed.
//!
//! Not part of the library: `src/bin/gen-cri.rs` (feature `codegen`) and
//! `tests/codegen.rs` include this file with `#[path]`.

use std::error::Error;
use std::path::{Path, PathBuf};

/// The command that rewrites the committed file.
pub const REGENERATE: &str = "cargo run -p sluice-proto --bin gen-cri --features codegen";

/// The crate's root directory.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the generated code is committed.
pub fn committed_path() -> PathBuf {
    crate_dir().join("src/gen/runtime.v1.rs")
}

/// Compiles the proto and returns the Rust source exactly as it is committed.
pub fn generate() -> Result<String, Box<dyn Error + Send + Sync>> {
    let proto_dir = crate_dir().join("cri");
    let fds = protox::compile(["api.proto"], [&proto_dir])?;

    let out = tempfile::tempdir()?;
    tonic_prost_build::configure()
        .build_client(true)
        // The server half lets tests (ours and other crates') run fake runtimes.
        .build_server(true)
        .build_transport(false)
        // Unimplemented-by-default methods: a fake implements only what it needs.
        .generate_default_stubs(true)
        // AuthConfig carries secrets: lib.rs gives it a redacting Debug.
        .skip_debug(["runtime.v1.AuthConfig"])
        .out_dir(out.path())
        .compile_fds(fds)?;

    let body = std::fs::read_to_string(out.path().join("runtime.v1.rs"))?;
    Ok(format!(
        "// Generated from proto/cri/api.proto. Do not edit by hand; run\n//   {REGENERATE}\n{body}"
    ))
}
