//! `udp-hostname [PORT]`: answers every UDP datagram on `PORT` (default 9001)
//! with this host's name and a newline. Baked into the test image (built by
//! `xtask` with `rustc -C target-feature=+crt-static`, as the image has no libc),
//! where busybox has no UDP server.

use std::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let reply = format!("{name}\n");
    let socket = match UdpSocket::bind(("0.0.0.0", port)) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("udp-hostname: binding port {port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("udp-hostname: {name} answers UDP on :{port}");
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((_, peer)) => {
                if let Err(e) = socket.send_to(reply.as_bytes(), peer) {
                    eprintln!("udp-hostname: answering {peer}: {e}");
                }
            }
            Err(e) => eprintln!("udp-hostname: receiving: {e}"),
        }
    }
}
