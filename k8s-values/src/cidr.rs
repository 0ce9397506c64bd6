//! IPv4 CIDRs as [`Ipv4Net`], and the address arithmetic several callers need.
//!
//! Two parsers, because callers differ on host bits: [`parse`] clears them (what the API
//! server and the controllers do with flags and `spec.podCIDR`, like upstream's
//! `net.ParseCIDR` network), [`parse_network`] refuses them (the CNI plugin, whose config
//! must name a network exactly). The longest prefix a range may have is each caller's own
//! policy, checked with [`check_prefix`].

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Why a CIDR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n` with `n` in 0..=32.
    #[error("{input:?} is not an IPv4 CIDR (want a.b.c.d/n, n at most 32)")]
    Syntax {
        /// The rejected text.
        input: String,
    },
    /// Bits below the prefix are set (only [`parse_network`] refuses those).
    #[error("{input:?} has host bits set (the network is {network})")]
    HostBits {
        /// The rejected text.
        input: String,
        /// The network it names.
        network: Ipv4Net,
    },
    /// The range is smaller than the caller allows.
    #[error("{net} is too small: the longest prefix allowed here is /{max}")]
    PrefixTooLong {
        /// The range.
        net: Ipv4Net,
        /// The caller's longest prefix.
        max: u8,
    },
}

/// Parses `a.b.c.d/n` (surrounding whitespace ignored) into its network, clearing host
/// bits: `10.96.1.7/12` is `10.96.0.0/12`.
///
/// # Errors
/// [`CidrError::Syntax`].
pub fn parse(input: &str) -> Result<Ipv4Net, CidrError> {
    input
        .trim()
        .parse::<Ipv4Net>()
        .map(|net| net.trunc())
        .map_err(|_| CidrError::Syntax {
            input: input.to_owned(),
        })
}

/// Parses `a.b.c.d/n` (surrounding whitespace ignored), refusing host bits.
///
/// # Errors
/// [`CidrError::Syntax`], [`CidrError::HostBits`].
pub fn parse_network(input: &str) -> Result<Ipv4Net, CidrError> {
    let net: Ipv4Net = input.trim().parse().map_err(|_| CidrError::Syntax {
        input: input.to_owned(),
    })?;
    if net.addr() == net.network() {
        Ok(net)
    } else {
        Err(CidrError::HostBits {
            input: input.to_owned(),
            network: net.trunc(),
        })
    }
}

/// `net` if its prefix is at most `max` (a caller's policy, e.g. "a Service range needs
/// two usable addresses").
///
/// # Errors
/// [`CidrError::PrefixTooLong`].
pub fn check_prefix(net: Ipv4Net, max: u8) -> Result<Ipv4Net, CidrError> {
    if net.prefix_len() <= max {
        Ok(net)
    } else {
        Err(CidrError::PrefixTooLong { net, max })
    }
}

/// How many addresses `net` spans, network and broadcast included (`/24` -> 256).
#[must_use]
pub fn size(net: Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(net.prefix_len()))
}

/// The `n`-th address of `net`, counting the network address as 0 (`nth(10.0.0.0/24, 1)`
/// is 10.0.0.1); `None` past the last address.
#[must_use]
pub fn nth(net: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    (u64::from(n) < size(net)).then(|| Ipv4Addr::from(u32::from(net.network()) + n))
}

/// Where `ip` lies in `net` (the inverse of [`nth`]); `None` outside it.
#[must_use]
pub fn offset(net: Ipv4Net, ip: Ipv4Addr) -> Option<u32> {
    net.contains(&ip)
        .then(|| u32::from(ip) - u32::from(net.network()))
}

/// Whether the two networks share at least one address.
#[must_use]
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        parse(s).unwrap()
    }

    #[test]
    fn parse_clears_host_bits_parse_network_refuses_them() {
        assert_eq!(net("10.96.1.7/12").to_string(), "10.96.0.0/12");
        assert_eq!(net(" 10.244.0.0/16 ").to_string(), "10.244.0.0/16");
        assert_eq!(
            parse_network("10.9.0.1/24"),
            Err(CidrError::HostBits {
                input: "10.9.0.1/24".into(),
                network: net("10.9.0.0/24"),
            })
        );
        assert_eq!(parse_network("10.9.0.0/24"), Ok(net("10.9.0.0/24")));
        assert_eq!(parse_network("10.9.0.7/32"), Ok(net("10.9.0.7/32")));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "/8",
            "nope",
            "10.0.0/8",
            "::1/128",
        ] {
            assert_eq!(
                parse(bad),
                Err(CidrError::Syntax { input: bad.into() }),
                "{bad}"
            );
            assert!(parse_network(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_policy_is_the_callers() {
        assert_eq!(check_prefix(net("10.0.0.0/30"), 30), Ok(net("10.0.0.0/30")));
        assert_eq!(
            check_prefix(net("10.0.0.0/31"), 30),
            Err(CidrError::PrefixTooLong {
                net: net("10.0.0.0/31"),
                max: 30
            })
        );
        assert!(check_prefix(net("10.0.0.0/32"), 32).is_ok());
    }

    #[test]
    fn address_arithmetic() {
        let n = net("10.96.0.0/29");
        assert_eq!(size(n), 8);
        assert_eq!(size(net("0.0.0.0/0")), 1 << 32);
        assert_eq!(size(net("10.0.0.1/32")), 1);
        assert_eq!(nth(n, 0), Some(Ipv4Addr::new(10, 96, 0, 0)));
        assert_eq!(nth(n, 1), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(nth(n, 7), Some(n.broadcast()));
        assert_eq!(nth(n, 8), None);
        assert_eq!(nth(net("0.0.0.0/0"), u32::MAX), Some(Ipv4Addr::BROADCAST));
        assert_eq!(offset(n, Ipv4Addr::new(10, 96, 0, 5)), Some(5));
        assert_eq!(offset(n, Ipv4Addr::new(10, 96, 0, 8)), None);
        assert!(overlaps(net("10.0.0.0/8"), net("10.1.0.0/16")));
        assert!(overlaps(net("10.1.0.0/16"), net("10.0.0.0/8")));
        assert!(!overlaps(net("10.0.0.0/24"), net("10.0.1.0/24")));
    }
}
