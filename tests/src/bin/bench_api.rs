//! `cargo xtask bench api`: API latency and throughput, and memory with many pods stored.
fn main() {
    eprintln!("bench-api: not written yet");
    std::process::exit(2);
}
