//! Rewrites `src/gen/runtime.v1.rs` from `cri/api.proto`.
//!
//! `cargo run -p sluice-proto --bin gen-cri --features codegen`

#[path = "../codegen.rs"]
mod codegen;

fn main() {
    let code = match codegen::generate() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gen-cri: {e}");
            std::process::exit(1);
        }
    };
    let path = codegen::committed_path();
    if let Err(e) = std::fs::write(&path, code) {
        eprintln!("gen-cri: writing {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("wrote {}", path.display());
}
