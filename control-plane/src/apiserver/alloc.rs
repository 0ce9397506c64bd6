//! `ClusterIP` and `NodePort` allocation. The allocated sets are derived from the stored
//! Services at start-up and kept in memory; the store stays the source of truth.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub use sluice_k8s_values::Ipv4Net;
use sluice_k8s_values::cidr::{self, CidrError};

/// The API server's policy for `--service-cidr`: at least two usable addresses (a /30),
/// since the network and broadcast addresses are never handed out.
pub const SERVICE_CIDR_MAX_PREFIX: u8 = 30;

/// Parses a Service range (`10.96.0.0/12`; host bits are cleared) and checks
/// [`SERVICE_CIDR_MAX_PREFIX`].
///
/// # Errors
/// Not a CIDR, or a prefix above /30.
pub fn parse_service_cidr(s: &str) -> Result<Ipv4Net, CidrError> {
    cidr::check_prefix(cidr::parse(s)?, SERVICE_CIDR_MAX_PREFIX)
}

/// The first usable address of a Service range (network + 1): upstream gives it to the
/// `kubernetes` Service.
#[must_use]
pub fn first_service_ip(range: Ipv4Net) -> Ipv4Addr {
    cidr::nth(range, 1).unwrap_or_else(|| range.network())
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

/// Service `ClusterIPs`.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: Ipv4Net,
    used: BTreeSet<u32>,
    next: u32,
}

impl IpAllocator {
    /// A new allocator over `cidr` (network and broadcast addresses excluded).
    #[must_use]
    pub fn new(cidr: Ipv4Net) -> Self {
        Self {
            cidr,
            used: BTreeSet::new(),
            next: 1,
        }
    }

    /// Addresses in the range, network and broadcast included (at most 2^32).
    fn size(&self) -> u32 {
        u32::try_from(cidr::size(self.cidr)).unwrap_or(u32::MAX)
    }

    /// Allocate a specific IP.
    pub fn allocate(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        match cidr::offset(self.cidr, ip) {
            Some(off) if off != 0 && off != self.size() - 1 => {
                if self.used.insert(off) {
                    Ok(())
                } else {
                    Err(AllocError::InUse { what: "IP" })
                }
            }
            _ => Err(AllocError::OutOfRange {
                what: "IP",
                range: self.cidr.to_string(),
            }),
        }
    }

    /// Allocate the next free IP (round robin, so a released IP is not reused at once).
    pub fn allocate_next(&mut self) -> Result<Ipv4Addr, AllocError> {
        let usable = self.size().saturating_sub(2);
        for i in 0..usable {
            let off = (self.next - 1 + i) % usable + 1;
            if !self.used.contains(&off) {
                self.used.insert(off);
                self.next = off % usable + 1;
                return cidr::nth(self.cidr, off).ok_or(AllocError::Full { what: "IP" });
            }
        }
        Err(AllocError::Full { what: "IP" })
    }

    /// Release an IP (no-op if not allocated or outside the range).
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(off) = cidr::offset(self.cidr, ip) {
            self.used.remove(&off);
        }
    }
}

/// `NodePorts`.
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
        let c = parse_service_cidr("10.96.0.0/29").unwrap();
        let mut a = IpAllocator::new(c);
        a.allocate(first_service_ip(c)).unwrap();
        assert_eq!(
            a.allocate(first_service_ip(c)),
            Err(AllocError::InUse { what: "IP" })
        );
        assert!(a.allocate("10.96.0.0".parse().unwrap()).is_err());
        assert!(a.allocate("10.96.0.7".parse().unwrap()).is_err());
        assert!(a.allocate("10.97.0.1".parse().unwrap()).is_err());
        let got: Vec<_> = (0..5).map(|_| a.allocate_next().unwrap()).collect();
        assert_eq!(got.len(), 5);
        assert!(!got.contains(&first_service_ip(c)));
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
        let c = parse_service_cidr("10.96.1.7/12").unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert_eq!(first_service_ip(c), Ipv4Addr::new(10, 96, 0, 1));
        assert!(parse_service_cidr("10.0.0.0").is_err());
        assert!(parse_service_cidr("10.0.0.0/30").is_ok());
        assert!(parse_service_cidr("10.0.0.0/31").is_err());
    }
}
