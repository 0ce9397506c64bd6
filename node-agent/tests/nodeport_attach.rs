//! Kernel test of attaching the north-south programs (root, real kernel):
//! tc ingress/egress through TCX and XDP (native, else generic) on a veth
//! in a network namespace the test creates, each with a pinned link that
//! outlives the loaded object, swapped atomically by the next load, and
//! gone after `detach_nodeport`.
//!
//! Objects as in `nodeport_prog_run.rs` (`target/bpf/sluice-nodeport{,-xdp}`
//! or the directory of `SLUICE_BPF_OBJ`). Needs root, `ip` and `bpftool`;
//! otherwise skipped, or failed under CI (see `sluice_test_util`).

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
};

use aya::programs::{SchedClassifier, TcAttachType};
use sluice_ebpf_common::nodeport::{
    NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_TC_EGRESS_PROGRAM, NP_TC_INGRESS_PROGRAM,
    NP_XDP_PROGRAM,
};
use sluice_node_agent::datapath::{
    AttachMode, NodePortKind, NodePortObject, ObjectSource, detach_nodeport, hook_pin, unpin,
    unpin_nodeport,
};

fn object_dir() -> PathBuf {
    if let Some(obj) = std::env::var_os("SLUICE_BPF_OBJ")
        && let Some(dir) = Path::new(&obj).parent()
    {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::var_os("SLUICE_BPF_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf")
}

/// A network namespace with a veth pair (`npa` <-> `npb`, both up),
/// deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("sluice-np-{}", std::process::id());
        sluice_test_util::run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self(name);
        ns.ip(&["link", "add", "npa", "type", "veth", "peer", "name", "npb"]);
        ns.ip(&["link", "set", "npa", "up"]);
        ns.ip(&["link", "set", "npb", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        sluice_test_util::stdout(Command::new("ip").args(["-n", &self.0]).args(args))
    }

    /// The names of the programs attached to `npa`: TCX ingress, TCX
    /// egress (queried from the kernel with `BPF_PROG_QUERY`; this
    /// bpftool predates TCX) and XDP (from `ip link`, then `bpftool prog`).
    fn hooks(&self) -> (Vec<String>, Vec<String>, Option<String>) {
        let tcx = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    [TcAttachType::Ingress, TcAttachType::Egress].map(|attach| {
                        let (_, programs) =
                            SchedClassifier::query_tcx("npa", attach).expect("query tcx");
                        programs
                            .iter()
                            .map(|info| info.name_as_str().unwrap_or("?").to_owned())
                            .collect::<Vec<_>>()
                    })
                })
                .join()
                .expect("query thread")
        });
        let [ingress, egress] = tcx;
        let link = self.ip(&["-d", "link", "show", "npa"]);
        let xdp = link
            .split_whitespace()
            .skip_while(|word| *word != "prog/xdp")
            .nth(2)
            .map(|id| {
                sluice_test_util::stdout(Command::new("bpftool").args(["prog", "show", "id", id]))
            });
        (ingress, egress, xdp)
    }

    /// Moves the calling thread into this namespace (only this thread).
    fn enter(&self) {
        let file = File::open(format!("/run/netns/{}", self.0)).expect("open netns");
        // SAFETY: setns(2) with a valid namespace fd and CLONE_NEWNET only
        // changes the calling thread's network namespace; `file` stays open
        // for the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A pin directory under bpffs, unpinned on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = detach_nodeport(&self.0.join("links"), "npa");
        let _ = std::fs::remove_dir(self.0.join("links"));
        let _ = unpin_nodeport(&self.0);
        let _ = unpin(&self.0);
    }
}

fn load(dir: &Path, pins: &Path) -> (NodePortObject, NodePortObject) {
    let tc = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_TC_OBJECT)),
        NodePortKind::Tc,
        pins,
    )
    .expect("load tc");
    let xdp = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_XDP_OBJECT)),
        NodePortKind::Xdp,
        pins,
    )
    .expect("load xdp");
    (tc, xdp)
}

#[test]
fn attach_tcx_and_xdp_to_veth_with_pinned_links() {
    let test = "attach_tcx_and_xdp_to_veth_with_pinned_links";
    if !sluice_test_util::require_root_and_tools(test, &["ip", "bpftool"]) {
        return;
    }
    let dir = object_dir();
    if !sluice_test_util::require(
        test,
        dir.join(NODEPORT_TC_OBJECT).is_file() && dir.join(NODEPORT_XDP_OBJECT).is_file(),
        "the north-south eBPF objects (`cargo xtask build-ebpf`)",
    ) {
        return;
    }
    let ns = Netns::new();
    let pins = PinDir(
        Path::new("/sys/fs/bpf/sluice-test").join(format!("np-attach-{}", std::process::id())),
    );
    let links_dir = pins.0.join("links");

    // The attaching thread lives in the test namespace; the test thread
    // keeps the root one (so `ip netns` commands behave as usual).
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                let (mut tc, mut xdp) = load(&dir, &pins.0);
                let hooks = tc.attach("npa", &links_dir).expect("attach tc");
                assert_eq!(
                    hooks
                        .iter()
                        .map(|h| (h.program, h.mode))
                        .collect::<Vec<_>>(),
                    [
                        (NP_TC_INGRESS_PROGRAM, AttachMode::Tcx),
                        (NP_TC_EGRESS_PROGRAM, AttachMode::Tcx)
                    ]
                );
                let hooks = xdp.attach("npa", &links_dir).expect("attach xdp");
                assert_eq!(hooks.len(), 1);
                assert!(
                    matches!(
                        hooks[0].mode,
                        AttachMode::XdpNative | AttachMode::XdpGeneric
                    ),
                    "{hooks:?}"
                );
                eprintln!("xdp attached as {:?}", hooks[0].mode);
            })
            .join()
            .expect("attach thread");
    });
    // The objects are dropped: the pins alone keep the hooks.
    for program in [NP_TC_INGRESS_PROGRAM, NP_TC_EGRESS_PROGRAM, NP_XDP_PROGRAM] {
        assert!(
            hook_pin(&links_dir, program, "npa").exists(),
            "{program} pin"
        );
    }
    let (ingress, egress, xdp) = ns.hooks();
    assert_eq!(ingress, [NP_TC_INGRESS_PROGRAM]);
    assert_eq!(egress, [NP_TC_EGRESS_PROGRAM]);
    let xdp = xdp.expect("ip link shows no XDP program on npa");
    assert!(xdp.contains(NP_XDP_PROGRAM), "{xdp}");

    // A restart: the pinned links stay and get the new programs.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                let (mut tc, mut xdp) = load(&dir, &pins.0);
                let modes: Vec<_> = tc
                    .attach("npa", &links_dir)
                    .expect("re-attach tc")
                    .into_iter()
                    .chain(xdp.attach("npa", &links_dir).expect("re-attach xdp"))
                    .map(|hook| hook.mode)
                    .collect();
                assert_eq!(modes, [AttachMode::Reused; 3]);
            })
            .join()
            .expect("re-attach thread");
    });
    let (ingress, egress, xdp) = ns.hooks();
    assert_eq!(ingress, [NP_TC_INGRESS_PROGRAM], "one program, not two");
    assert_eq!(egress, [NP_TC_EGRESS_PROGRAM]);
    assert!(xdp.is_some_and(|xdp| xdp.contains(NP_XDP_PROGRAM)));

    detach_nodeport(&links_dir, "npa").expect("detach");
    let (ingress, egress, xdp) = ns.hooks();
    assert!(
        ingress.is_empty() && egress.is_empty(),
        "{ingress:?} {egress:?}"
    );
    assert_eq!(xdp, None, "XDP left after detach");
}
