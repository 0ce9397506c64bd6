//! Links, addresses and routes, through iproute2's `ip`.
//!
//! Why `ip` and not a netlink crate: it is on every node (containerd needs
//! it), its error messages are the kernel's, and `-batch` applies several
//! changes in one process, so an ADD costs two short-lived processes. The
//! price is a fork+exec per batch (see `bench-cni`). Commands for the
//! container side run with the child moved into the pod's network namespace
//! by `setns(2)` between fork and exec, so the plugin's own threads never
//! change namespace (iproute2 6.1's `ip -n` takes names only, not paths).

use std::{
    ffi::CString,
    fs::File,
    io::{self, Write},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use super::CniError;

/// Where `ip` is looked for before falling back to `$PATH`.
const IP_CANDIDATES: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

fn ip_binary() -> &'static str {
    IP_CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// An open network namespace file (`CNI_NETNS`).
#[derive(Debug)]
pub struct Netns {
    file: File,
}

impl Netns {
    /// Opens the namespace at `path`.
    ///
    /// # Errors
    /// [`CniError::ContainerUnknown`] if it does not exist,
    /// [`CniError::Io`] if it cannot be opened.
    pub fn open(path: &Path) -> Result<Self, CniError> {
        match File::open(path) {
            Ok(file) => Ok(Self { file }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CniError::ContainerUnknown {
                reason: format!("network namespace {} does not exist", path.display()),
            }),
            Err(e) => Err(CniError::io(
                format!("opening network namespace {}", path.display()),
                e,
            )),
        }
    }
}

/// Runs `ip <args>` (in `netns` if given) feeding `stdin`; returns stdout,
/// or the trimmed stderr as a [`CniError::Netlink`].
fn run(netns: Option<&Netns>, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>, CniError> {
    let mut cmd = Command::new(ip_binary());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = netns {
        let fd = ns.file.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setns(2), which is async-signal-safe and allocates nothing
        // (io::Error::last_os_error only reads errno). `fd` stays open in the
        // child: the parent keeps `ns` (and so the File) alive across spawn,
        // and O_CLOEXEC closes it only at exec, after setns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    let operation = || {
        let mut s = format!("ip {}", args.join(" "));
        if let Some(input) = stdin {
            s.push_str(" <<< ");
            s.push_str(&input.replace('\n', "; "));
        }
        s
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| CniError::io(format!("running {}", operation()), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| CniError::io(format!("writing to {}", operation()), e))?;
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child
        .wait_with_output()
        .map_err(|e| CniError::io(format!("waiting for {}", operation()), e))?;
    if status.success() {
        Ok(stdout)
    } else {
        Err(CniError::Netlink {
            operation: operation(),
            message: String::from_utf8_lossy(&stderr).trim().to_owned(),
        })
    }
}

/// Runs a batch of `ip` commands (one per line), stopping at the first error.
///
/// # Errors
/// [`CniError::Netlink`] naming the failed batch and the kernel's message.
pub fn batch(netns: Option<&Netns>, commands: &[String]) -> Result<(), CniError> {
    let mut input = commands.join("\n");
    input.push('\n');
    run(netns, &["-batch", "-"], Some(&input)).map(|_| ())
}

/// Runs `ip -j <args>` and parses its JSON output.
///
/// # Errors
/// [`CniError::Netlink`] if `ip` fails, [`CniError::Decode`] if its output is
/// not JSON.
pub fn json(netns: Option<&Netns>, args: &[&str]) -> Result<Value, CniError> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = run(netns, &full, None)?;
    if out.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out).map_err(|source| CniError::Decode {
        what: format!("output of ip {}", full.join(" ")),
        source,
    })
}

/// Whether a link named `name` exists in the plugin's own (host) namespace.
#[must_use]
pub fn host_link_exists(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it and returns 0 when no such link exists.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// Whether a link named `name` exists in `netns`.
///
/// # Errors
/// [`CniError::Netlink`] or [`CniError::Io`] when `ip` cannot tell.
pub fn netns_link_exists(netns: &Netns, name: &str) -> Result<bool, CniError> {
    match json(Some(netns), &["link", "show", "dev", name]) {
        Ok(_) => Ok(true),
        Err(CniError::Netlink { message, .. }) if message.contains("does not exist") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes host link `name`; succeeds if it is (already) gone.
///
/// # Errors
/// [`CniError::Netlink`] if it exists and cannot be deleted.
pub fn delete_host_link(name: &str) -> Result<(), CniError> {
    if !host_link_exists(name) {
        return Ok(());
    }
    match run(None, &["link", "del", "dev", name], None) {
        Ok(_) => Ok(()),
        Err(_) if !host_link_exists(name) => Ok(()),
        Err(e) => Err(e),
    }
}
