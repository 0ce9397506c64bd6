//! Host-local IPAM: one /32 per attachment out of the node's pod CIDR.
//!
//! State lives in `<dataDir>/<network>/allocations.json`, rewritten
//! atomically (temp file, fsync, rename, fsync of the directory) under an
//! exclusive `flock` on `<dataDir>/<network>/lock`, so concurrent ADDs never
//! hand out one address twice and allocations survive restarts. Addresses
//! are handed out round-robin after the last one given, so a freed address
//! is not reused at once (stale conntrack entries, late packets).

use std::{
    collections::{BTreeMap, HashSet},
    fs::{self, File, OpenOptions},
    io::Write,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sluice_k8s_values::Ipv4Net;

use super::{CniError, config::Attachment};

const STATE_FILE: &str = "allocations.json";
const LOCK_FILE: &str = "lock";

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `CNI_CONTAINERID` of the ADD that took it.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of that ADD.
    pub ifname: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The last address handed out (round-robin cursor).
    #[serde(default)]
    last: Option<Ipv4Addr>,
    /// Address -> owner.
    #[serde(default)]
    allocations: BTreeMap<Ipv4Addr, Owner>,
}

/// One network's address pool on this node.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
}

/// The pool's state, read under its lock; dropping it releases the lock.
#[derive(Debug)]
pub struct Locked<'a> {
    pool: &'a Pool,
    _lock: File,
    state: State,
    dirty: bool,
}

impl Pool {
    /// A pool for `cidr` keeping its state in `dir` (created on first lock).
    #[must_use]
    pub fn new(dir: PathBuf, cidr: Ipv4Net, gateway: Ipv4Addr) -> Self {
        Self { dir, cidr, gateway }
    }

    /// Takes the pool's exclusive lock (blocking) and reads its state.
    ///
    /// # Errors
    /// [`CniError::Io`] if the directory, lock or state file cannot be used;
    /// [`CniError::Decode`] if the state file is corrupt.
    pub fn lock(&self) -> Result<Locked<'_>, CniError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| CniError::io(format!("creating {}", self.dir.display()), e))?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CniError::io(format!("opening {}", lock_path.display()), e))?;
        lock.lock()
            .map_err(|e| CniError::io(format!("locking {}", lock_path.display()), e))?;
        let state_path = self.dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| CniError::Decode {
                what: format!("IPAM state {}", state_path.display()),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(CniError::io(format!("reading {}", state_path.display()), e)),
        };
        Ok(Locked {
            pool: self,
            _lock: lock,
            state,
            dirty: false,
        })
    }

    /// Addresses pods may get: the CIDR less network, broadcast and gateway.
    fn usable(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let first = u32::from(self.cidr.network()) + 1;
        let last = u32::from(self.cidr.broadcast()) - 1;
        (first..=last)
            .map(Ipv4Addr::from)
            .filter(move |ip| *ip != self.gateway)
    }
}

impl Locked<'_> {
    /// The address held by `owner`, if any.
    #[must_use]
    pub fn find(&self, container_id: &str, ifname: &str) -> Option<Ipv4Addr> {
        self.state
            .allocations
            .iter()
            .find(|(_, o)| o.container_id == container_id && o.ifname == ifname)
            .map(|(ip, _)| *ip)
    }

    /// All allocations.
    pub fn allocations(&self) -> impl Iterator<Item = (Ipv4Addr, &Owner)> {
        self.state.allocations.iter().map(|(ip, o)| (*ip, o))
    }

    /// Whether no usable address is free.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.pool
            .usable()
            .all(|ip| self.state.allocations.contains_key(&ip))
    }

    /// Returns the address held by (`container_id`, `ifname`) or takes the
    /// next free one. The bool is true when the address is newly taken.
    ///
    /// # Errors
    /// [`CniError::PoolExhausted`] when every usable address is held.
    pub fn allocate(
        &mut self,
        container_id: &str,
        ifname: &str,
    ) -> Result<(Ipv4Addr, bool), CniError> {
        if let Some(ip) = self.find(container_id, ifname) {
            return Ok((ip, false));
        }
        let usable: Vec<Ipv4Addr> = self.pool.usable().collect();
        let start = self
            .state
            .last
            .and_then(|last| usable.iter().position(|ip| *ip == last))
            .map_or(0, |i| i + 1);
        let n = usable.len();
        let ip = (0..n)
            .map(|k| usable[(start + k) % n])
            .find(|ip| !self.state.allocations.contains_key(ip))
            .ok_or_else(|| CniError::PoolExhausted {
                cidr: self.pool.cidr.to_string(),
            })?;
        self.state.allocations.insert(
            ip,
            Owner {
                container_id: container_id.to_owned(),
                ifname: ifname.to_owned(),
            },
        );
        self.state.last = Some(ip);
        self.dirty = true;
        Ok((ip, true))
    }

    /// Frees what (`container_id`, `ifname`) holds; returns the freed addresses.
    pub fn release(&mut self, container_id: &str, ifname: &str) -> Vec<Ipv4Addr> {
        self.retain(|o| !(o.container_id == container_id && o.ifname == ifname))
    }

    /// Frees every allocation not in `valid`; returns what was freed.
    pub fn retain_attachments(&mut self, valid: &[Attachment]) -> Vec<(Ipv4Addr, Owner)> {
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        let freed: Vec<(Ipv4Addr, Owner)> = self
            .state
            .allocations
            .iter()
            .filter(|(_, o)| !keep.contains(&(o.container_id.as_str(), o.ifname.as_str())))
            .map(|(ip, o)| (*ip, o.clone()))
            .collect();
        for (ip, _) in &freed {
            self.state.allocations.remove(ip);
        }
        self.dirty |= !freed.is_empty();
        freed
    }

    fn retain(&mut self, keep: impl Fn(&Owner) -> bool) -> Vec<Ipv4Addr> {
        let freed: Vec<Ipv4Addr> = self
            .state
            .allocations
            .iter()
            .filter(|(_, o)| !keep(o))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &freed {
            self.state.allocations.remove(ip);
        }
        self.dirty |= !freed.is_empty();
        freed
    }

    /// Writes the state back atomically if it changed.
    ///
    /// # Errors
    /// [`CniError::Io`] if the write, fsync or rename fails.
    pub fn commit(&mut self) -> Result<(), CniError> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|source| CniError::Decode {
            what: "IPAM state (encoding)".into(),
            source,
        })?;
        write_atomic(&self.pool.dir, STATE_FILE, &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CniError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let io = |what: &str, p: &Path| {
        let ctx = format!("{what} {}", p.display());
        move |e| CniError::io(ctx, e)
    };
    let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io("renaming to", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, cidr: &str) -> Pool {
        let cidr: Ipv4Net = cidr.parse().unwrap();
        Pool::new(
            dir.to_path_buf(),
            cidr,
            sluice_k8s_values::cidr::nth(cidr, 1).unwrap(),
        )
    }

    #[test]
    fn skips_network_gateway_broadcast_and_exhausts() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), "10.1.0.0/29");
        let mut l = pool.lock().unwrap();
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| l.allocate(&format!("c{i}"), "eth0").unwrap().0)
            .collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 0, h)).collect();
        assert_eq!(got, want);
        assert!(l.is_full());
        assert!(matches!(
            l.allocate("c9", "eth0"),
            Err(CniError::PoolExhausted { .. })
        ));
        // Same owner gets the same address back, not a new one.
        assert_eq!(
            l.allocate("c0", "eth0").unwrap(),
            (Ipv4Addr::new(10, 1, 0, 2), false)
        );
    }

    #[test]
    fn persists_and_round_robins() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), "10.1.0.0/24");
        {
            let mut l = pool.lock().unwrap();
            l.allocate("a", "eth0").unwrap();
            l.allocate("b", "eth0").unwrap();
            l.commit().unwrap();
        }
        let mut l = pool.lock().unwrap();
        assert_eq!(l.find("b", "eth0"), Some(Ipv4Addr::new(10, 1, 0, 3)));
        assert_eq!(l.release("a", "eth0"), vec![Ipv4Addr::new(10, 1, 0, 2)]);
        // The freed .2 is not reused at once.
        assert_eq!(
            l.allocate("c", "eth0").unwrap().0,
            Ipv4Addr::new(10, 1, 0, 4)
        );
        let freed = l.retain_attachments(&[Attachment {
            container_id: "c".into(),
            ifname: "eth0".into(),
        }]);
        assert_eq!(freed.len(), 1);
        assert_eq!(l.allocations().count(), 1);
    }
}
