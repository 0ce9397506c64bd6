//! ClusterIP and NodePort allocation. The allocated sets are derived from the stored
//! Services at start-up and kept in memory; the store stays the source of truth.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want a.b.c.d/n)"))?;
        let addr: Ipv4Addr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = p.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if prefix > 30 {
            return Err(format!("{s:?}: prefix must be at most /30"));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    fn size(self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` lies in this range.
    #[must_use]
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let base = u32::from(self.addr);
        let x = u32::from(ip);
        x >= base && x - base < self.size()
    }

    /// The first usable address (network + 1): upstream gives it to the `kubernetes` Service.
    #[must_use]
    pub fn first(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }
}

/// Allocation failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// The requested value is outside the range.
    #[error("the provided {what} is not in the valid range. The range of valid {what}s is {range}")]
    OutOfRange {
        /// "IP" or "port".
        what: &'static str,
        /// The range.
        range: String,
    },
    /// Already in use.
    #[error("provided {what} is already allocated")]
    InUse {
        /// "IP" or "port".
        what: &'static str,
    },
    /// No free value left.
    #[error("range is full: no {what} left to allocate")]
    Full {
        /// "IP" or "port".
        what: &'static str,
    },
}

/// Service ClusterIPs.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: Cidr,
    used: BTreeSet<u32>,
    next: u32,
}

impl IpAllocator {
    /// A new allocator over `cidr` (network and broadcast addresses excluded).
    #[must_use]
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            used: BTreeSet::new(),
            next: 1,
        }
    }

    /// Allocate a specific IP.
    pub fn allocate(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let off = u32::from(ip).wrapping_sub(u32::from(self.cidr.addr));
        if !self.cidr.contains(ip) || off == 0 || off == self.cidr.size() - 1 {
            return Err(AllocError::OutOfRange {
                what: "IP",
                range: self.cidr.to_string(),
            });
        }
        if !self.used.insert(off) {
            return Err(AllocError::InUse { what: "IP" });
        }
        Ok(())
    }

    /// Allocate the next free IP (round robin, so a released IP is not reused at once).
    pub fn allocate_next(&mut self) -> Result<Ipv4Addr, AllocError> {
        let usable = self.cidr.size() - 2;
        for i in 0..usable {
            let off = (self.next - 1 + i) % usable + 1;
            if !self.used.contains(&off) {
                self.used.insert(off);
                self.next = off % usable + 1;
                return Ok(Ipv4Addr::from(u32::from(self.cidr.addr) + off));
            }
        }
        Err(AllocError::Full { what: "IP" })
    }

    /// Release an IP (no-op if not allocated or outside the range).
    pub fn release(&mut self, ip: Ipv4Addr) {
        if self.cidr.contains(ip) {
            self.used
                .remove(&(u32::from(ip) - u32::from(self.cidr.addr)));
        }
    }
}

/// NodePorts.
#[derive(Debug)]
pub struct PortAllocator {
    range: (u16, u16),
    used: BTreeSet<u16>,
    next: u16,
}

impl PortAllocator {
    /// A new allocator over `lo..=hi`.
    #[must_use]
    pub fn new(range: (u16, u16)) -> Self {
        Self {
            range,
            used: BTreeSet::new(),
            next: range.0,
        }
    }

    /// Allocate a specific port.
    pub fn allocate(&mut self, port: u16) -> Result<(), AllocError> {
        if port < self.range.0 || port > self.range.1 {
            return Err(AllocError::OutOfRange {
                what: "port",
                range: format!("{}-{}", self.range.0, self.range.1),
            });
        }
        if !self.used.insert(port) {
            return Err(AllocError::InUse { what: "port" });
        }
        Ok(())
    }

    /// Allocate the next free port.
    pub fn allocate_next(&mut self) -> Result<u16, AllocError> {
        let n = u32::from(self.range.1 - self.range.0) + 1;
        for i in 0..n {
            let off = (u32::from(self.next - self.range.0) + i) % n;
            let p = self.range.0 + u16::try_from(off).unwrap_or(0);
            if !self.used.contains(&p) {
                self.used.insert(p);
                self.next = if p == self.range.1 {
                    self.range.0
                } else {
                    p + 1
                };
                return Ok(p);
            }
        }
        Err(AllocError::Full { what: "port" })
    }

    /// Release a port.
    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_skip_network_broadcast_and_used() {
        let c: Cidr = "10.96.0.0/29".parse().unwrap();
        let mut a = IpAllocator::new(c);
        a.allocate(c.first()).unwrap();
        assert_eq!(a.allocate(c.first()), Err(AllocError::InUse { what: "IP" }));
        assert!(a.allocate("10.96.0.0".parse().unwrap()).is_err());
        assert!(a.allocate("10.96.0.7".parse().unwrap()).is_err());
        assert!(a.allocate("10.97.0.1".parse().unwrap()).is_err());
        let got: Vec<_> = (0..5).map(|_| a.allocate_next().unwrap()).collect();
        assert_eq!(got.len(), 5);
        assert!(!got.contains(&c.first()));
        assert_eq!(a.allocate_next(), Err(AllocError::Full { what: "IP" }));
        a.release(got[2]);
        assert_eq!(a.allocate_next().unwrap(), got[2]);
    }

    #[test]
    fn ports_in_range() {
        let mut p = PortAllocator::new((30000, 30002));
        assert!(p.allocate(29999).is_err());
        p.allocate(30001).unwrap();
        let a = p.allocate_next().unwrap();
        let b = p.allocate_next().unwrap();
        assert_eq!([a, b], [30000, 30002]);
        assert!(p.allocate_next().is_err());
        p.release(30000);
        assert_eq!(p.allocate_next().unwrap(), 30000);
    }

    #[test]
    fn cidr_parse() {
        let c: Cidr = "10.96.1.7/12".parse().unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/31".parse::<Cidr>().is_err());
    }
}
