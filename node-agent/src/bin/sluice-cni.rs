//! `sluice-cni`: the CNI plugin binary. containerd runs it with `CNI_*`
//! environment variables and the network config on stdin; all logic lives in
//! [`sluice_node_agent::cni`].

use std::{
    io::{IsTerminal, Read, Write},
    process::ExitCode,
};

use sluice_node_agent::cni;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let input = std::io::stdin();
    // VERSION needs no config; do not block on an interactive terminal.
    let skip = std::env::var("CNI_COMMAND").as_deref() == Ok("VERSION") && input.is_terminal();
    if !skip {
        // An unreadable stdin decodes as empty and fails with code 6.
        let _ = input.lock().read_to_end(&mut stdin);
    }
    let reply = cni::execute(|k| std::env::var(k).ok(), &stdin);
    if !reply.stdout.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", reply.stdout);
        let _ = out.flush();
    }
    ExitCode::from(reply.exit_code)
}
