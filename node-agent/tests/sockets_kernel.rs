//! Kernel test (root) of `sockets`: connected UDP sockets of a "pod" (a process in its own
//! network namespace and cgroup) are found through the cgroup, and exactly those to the
//! removed backend are destroyed with `SOCK_DESTROY`, which the client sees as `ECONNABORTED`.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_node_agent::sockets::{self, Transport};

struct Pod {
    netns: String,
    cgroup: PathBuf,
    children: Vec<Child>,
}

impl Pod {
    fn new(tag: &str) -> Self {
        let netns = format!("sluice-socktest-{tag}-{}", std::process::id());
        sluice_test_util::run(Command::new("ip").args(["netns", "add", &netns]));
        sluice_test_util::run(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]));
        let root = sluice_node_agent::datapath::cgroup2_mount().expect("a cgroup2 mount");
        let cgroup = root.join(&netns);
        std::fs::create_dir_all(&cgroup).expect("create the cgroup");
        Self {
            netns,
            cgroup,
            children: Vec::new(),
        }
    }

    /// The cgroup as `/proc/<pid>/cgroup` names it.
    fn cgroup_name(&self) -> String {
        format!("/{}", self.netns)
    }

    /// A process (the pod's "pause") in the pod's namespace and cgroup, which is how
    /// `pod_namespaces` finds the namespace.
    fn pause(&mut self) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep");
        std::fs::write(self.cgroup.join("cgroup.procs"), child.id().to_string())
            .expect("move it into the pod cgroup");
        self.children.push(child);
    }

    /// A UDP socket in the pod's namespace connected to `target` (made on a thread that
    /// entered the namespace: a socket belongs to the namespace it was made in).
    fn udp_client(&self, target: &str) -> UdpSocket {
        let path = PathBuf::from("/run/netns").join(&self.netns);
        let target = target.to_owned();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the netns");
            // SAFETY: setns(2) on a valid descriptor; it moves only this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.connect(&target).expect("connect");
            socket
        })
        .join()
        .expect("the socket thread")
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn peers(namespaces: &[PathBuf]) -> Vec<String> {
    let mut all: Vec<String> = sockets::list(namespaces, Transport::Udp)
        .expect("list UDP sockets")
        .into_iter()
        .map(|s| s.peer.to_string())
        .collect();
    all.sort();
    all
}

#[test]
fn destroys_only_the_sockets_connected_to_a_removed_backend() {
    if !sluice_test_util::require_root_and_tools(
        "destroys_only_the_sockets_connected_to_a_removed_backend",
        &["ip", "/bin/busybox"],
    ) {
        return;
    }
    let mut pod = Pod::new("a");
    pod.pause();
    let gone = pod.udp_client("127.0.0.1:5353");
    let kept = pod.udp_client("127.0.0.1:5354");

    let namespaces = wait_until("the pod's namespace", || {
        let found = sockets::pod_namespaces(&pod.cgroup_name());
        (found.len() == 1).then_some(found)
    });
    assert_eq!(peers(&namespaces), ["127.0.0.1:5353", "127.0.0.1:5354"]);

    let removed: std::net::SocketAddrV4 = "127.0.0.1:5353".parse().unwrap();
    let destroyed =
        sockets::destroy(&namespaces, Transport::Udp, &|s| s.peer == removed).expect("destroy");
    assert_eq!(destroyed, 1);
    assert_eq!(
        peers(&namespaces),
        ["127.0.0.1:5354"],
        "only the other socket is left"
    );
    // Nothing left to destroy: a second pass is a no-op.
    assert_eq!(
        sockets::destroy(&namespaces, Transport::Udp, &|s| s.peer == removed).unwrap(),
        0
    );

    // The destroyed socket carries the abort as its pending error (what a blocked or next
    // recv returns) and is disconnected, so a send without reconnecting fails; the other
    // socket is untouched.
    let pending = gone
        .take_error()
        .expect("SO_ERROR")
        .expect("a pending error");
    assert_eq!(
        pending.raw_os_error(),
        Some(libc::ECONNABORTED),
        "{pending}"
    );
    let err = gone
        .send(b"x")
        .expect_err("the destroyed socket is disconnected");
    assert_eq!(err.raw_os_error(), Some(libc::EDESTADDRREQ), "{err}");
    assert!(kept.take_error().unwrap().is_none());
    kept.send(b"x").expect("the kept socket still sends");

    // Another cgroup sees none of these sockets.
    assert!(sockets::pod_namespaces("/sluice-socktest-none").is_empty());
    assert!(Path::new(&pod.cgroup).exists());
}
