//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4), the table
//! builder for north-south backend choice.
//!
//! Every node builds the same table from the same backends (the order they
//! are given in does not matter: the builder sorts them by identity), so a
//! flow hashed to entry `i` reaches the same backend through any node, and
//! removing one of `N` backends moves about `1/N` of the entries: those of
//! the removed backend, and a few others.
//!
//! The table size must be prime (every skip is then coprime with it, so each
//! backend's permutation visits every entry); the kernel map takes
//! [`MAGLEV_TABLE_SIZE`] entries ([`to_map_value`]).

use sluice_ebpf_common::nodeport::{MAGLEV_TABLE_SIZE, MaglevValue};

/// Errors building a Maglev table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The table size is not a prime.
    #[error("Maglev table size {size} is not a prime")]
    NotPrime {
        /// The size asked for.
        size: usize,
    },
    /// No backends: there is nothing to fill the table with.
    #[error("a Maglev table needs at least one backend")]
    NoBackends,
    /// More backends than table entries (or than a `u16` slot can name).
    #[error("{count} backends do not fit a Maglev table of {size} entries")]
    TooManyBackends {
        /// Number of backends.
        count: usize,
        /// The table size.
        size: usize,
    },
    /// [`to_map_value`] got a table of another size than the map's.
    #[error("table of {size} entries, the map takes {MAGLEV_TABLE_SIZE}")]
    WrongSize {
        /// The table's size.
        size: usize,
    },
}

/// Whether `n` is prime (trial division; sizes are small).
#[must_use]
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// 64-bit FNV-1a of `bytes` from `basis`: stable across builds and nodes
/// (unlike `std`'s randomly keyed hasher).
fn fnv1a(basis: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Builds a Maglev table of `size` entries (a prime) over `backends`, each
/// named by its identity bytes (for example `"10.244.1.5:8080"`). Entry `i`
/// holds the index into `backends` of the backend flows hashed to `i` go to.
///
/// Each backend gets `floor(size / n)` or `ceil(size / n)` entries.
///
/// # Errors
/// [`MaglevError::NotPrime`], [`MaglevError::NoBackends`],
/// [`MaglevError::TooManyBackends`].
pub fn build<B: AsRef<[u8]>>(backends: &[B], size: usize) -> Result<Vec<u16>, MaglevError> {
    if !is_prime(size) {
        return Err(MaglevError::NotPrime { size });
    }
    if backends.is_empty() {
        return Err(MaglevError::NoBackends);
    }
    if backends.len() > size || backends.len() > usize::from(u16::MAX) {
        return Err(MaglevError::TooManyBackends {
            count: backends.len(),
            size,
        });
    }
    // Fill in identity order, so the table does not depend on input order.
    let mut order: Vec<usize> = (0..backends.len()).collect();
    order.sort_by(|a, b| backends[*a].as_ref().cmp(backends[*b].as_ref()));

    let size_u64 = u64::try_from(size).expect("usize fits u64");
    // (offset, skip) of each backend's permutation, in fill order.
    let perms: Vec<(u64, u64)> = order
        .iter()
        .map(|&index| {
            let name = backends[index].as_ref();
            let offset = fnv1a(0xcbf2_9ce4_8422_2325, name) % size_u64;
            let skip = fnv1a(0x8422_2325_cbf2_9ce4, name) % (size_u64 - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; order.len()];
    let mut table: Vec<Option<u16>> = vec![None; size];
    let mut filled = 0;
    'fill: loop {
        for (turn, &index) in order.iter().enumerate() {
            let (offset, skip) = perms[turn];
            // Each permutation visits every entry, so this ends.
            let entry = loop {
                let candidate = (offset + next[turn] * skip) % size_u64;
                next[turn] += 1;
                let candidate = usize::try_from(candidate).expect("below size");
                if table[candidate].is_none() {
                    break candidate;
                }
            };
            table[entry] = Some(u16::try_from(index).expect("checked above"));
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    Ok(table
        .into_iter()
        .map(|entry| entry.expect("every entry filled"))
        .collect())
}

/// The kernel map value for a table of [`MAGLEV_TABLE_SIZE`] entries:
/// backend index `i` becomes slot `i + 1` of the frontend, so `backends`
/// must be given in slot order.
///
/// # Errors
/// [`MaglevError::WrongSize`] when the table has another size.
pub fn to_map_value(table: &[u16]) -> Result<MaglevValue, MaglevError> {
    if table.len() != MAGLEV_TABLE_SIZE {
        return Err(MaglevError::WrongSize { size: table.len() });
    }
    let mut value = MaglevValue {
        slots: [0; MAGLEV_TABLE_SIZE],
        pad: [0; 2],
    };
    for (slot, index) in value.slots.iter_mut().zip(table) {
        *slot = index + 1;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::{MaglevError, build, is_prime, to_map_value};
    use sluice_ebpf_common::nodeport::MAGLEV_TABLE_SIZE;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.244.{}.{}:8080", i / 200, i % 200 + 1))
            .collect()
    }

    fn named(table: &[u16], backends: &[String]) -> Vec<String> {
        table
            .iter()
            .map(|&i| backends[usize::from(i)].clone())
            .collect()
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            build(&names(3), 1_000),
            Err(MaglevError::NotPrime { size: 1_000 })
        );
        assert_eq!(build::<String>(&[], 7), Err(MaglevError::NoBackends));
        assert_eq!(
            build(&names(8), 7),
            Err(MaglevError::TooManyBackends { count: 8, size: 7 })
        );
        assert!(is_prime(MAGLEV_TABLE_SIZE));
        assert!(is_prime(65_537) && !is_prime(65_535) && !is_prime(1));
        assert_eq!(
            to_map_value(&[0; 7]),
            Err(MaglevError::WrongSize { size: 7 })
        );
    }

    #[test]
    fn deterministic_and_order_independent() {
        let backends = names(7);
        let table = build(&backends, 1_021).unwrap();
        assert_eq!(table, build(&backends, 1_021).unwrap());
        let mut reversed = backends.clone();
        reversed.reverse();
        let other = build(&reversed, 1_021).unwrap();
        assert_eq!(named(&table, &backends), named(&other, &reversed));
    }

    #[test]
    fn balanced() {
        for (n, size) in [(1, 7), (3, 1_021), (10, 1_021), (100, 65_537)] {
            let table = build(&names(n), size).unwrap();
            let mut counts = vec![0usize; n];
            for &i in &table {
                counts[usize::from(i)] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(
                *min >= size / n && *max <= size.div_ceil(n),
                "n={n} size={size}: {min}..{max}"
            );
        }
    }

    /// Removing one of N backends remaps about 1/N of the entries: all of
    /// the removed backend's, and only a few others.
    #[test]
    fn removing_one_backend_remaps_about_one_nth() {
        for (n, size) in [(10, 1_021), (10, 65_537), (50, 65_537)] {
            let before = names(n);
            let mut after = before.clone();
            let removed = after.remove(n / 2);
            let old = named(&build(&before, size).unwrap(), &before);
            let new = named(&build(&after, size).unwrap(), &after);
            let moved = old.iter().zip(&new).filter(|(a, b)| a != b).count();
            let owned = old.iter().filter(|b| **b == removed).count();
            assert!(moved >= owned, "the removed backend's entries all move");
            eprintln!(
                "maglev n={n} size={size}: removing one moved {moved} entries ({owned} were its own)"
            );
            // Maglev's bound is loose; in practice well under 2/N moves.
            #[expect(clippy::cast_precision_loss, reason = "ratios of small counts")]
            let fraction = moved as f64 / size as f64;
            #[expect(clippy::cast_precision_loss, reason = "ratios of small counts")]
            let one_nth = 1.0 / n as f64;
            assert!(
                fraction >= one_nth * 0.9 && fraction <= one_nth * 2.0,
                "n={n} size={size}: {moved} of {size} entries moved ({fraction:.4}, 1/N = {one_nth:.4})"
            );
        }
    }

    #[test]
    fn map_value_is_one_based_slots() {
        let table = build(&names(3), MAGLEV_TABLE_SIZE).unwrap();
        let value = to_map_value(&table).unwrap();
        assert!(value.slots.iter().all(|slot| (1..=3).contains(slot)));
        assert_eq!(value.slots[0], table[0] + 1);
    }
}
