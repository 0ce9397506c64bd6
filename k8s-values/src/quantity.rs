//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1Gi`, `1e3`), exact.
//!
//! The grammar is upstream's (`k8s.io/apimachinery/pkg/api/resource`):
//!
//! ```text
//! <quantity>        ::= <sign>? <number> <suffix>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalSI> | <decimalExponent>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= e <sign>? <digits> | E <sign>? <digits>
//! ```
//!
//! Values are computed in integers (no `f64`): [`milli_value`] is upstream's `MilliValue`
//! (CPU in millicores) and [`value`] its `Value` (memory in bytes, pod counts), both rounding
//! a fraction up, away from zero, as upstream does. Surrounding whitespace is ignored.
//! Limits: at most 38 significant digits, and results must fit an `i64`.

/// Why a quantity could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a quantity.
    #[error("invalid quantity {input:?}: {reason}")]
    Syntax {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The quantity is well formed but does not fit an `i64` in the wanted unit.
    #[error("quantity {input:?} is out of range")]
    OutOfRange {
        /// The rejected text.
        input: String,
    },
}

/// Most significant digits kept exactly (`u128` holds 38 decimal digits).
const MAX_DIGITS: usize = 38;

/// A parsed quantity: `(-1)^negative * mantissa * 1024^binary * 10^exp10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    binary: u32,
    exp10: i64,
}

/// CPU in millicores, rounded up as upstream's `MilliValue` (`0.5` -> 500, `100m` -> 100,
/// `1u` -> 1).
///
/// # Errors
/// [`QuantityError::Syntax`] for malformed text, [`QuantityError::OutOfRange`] when the
/// millivalue does not fit an `i64`.
pub fn milli_value(input: &str) -> Result<i64, QuantityError> {
    scaled(input, 3)
}

/// The value in its base unit (bytes, or a count such as pods), rounded up as upstream's
/// `Value` (`1Gi` -> 1 073 741 824, `100m` -> 1).
///
/// # Errors
/// As [`milli_value`].
pub fn value(input: &str) -> Result<i64, QuantityError> {
    scaled(input, 0)
}

/// `input * 10^scale`, rounded away from zero.
fn scaled(input: &str, scale: i64) -> Result<i64, QuantityError> {
    let out_of_range = || QuantityError::OutOfRange {
        input: input.to_owned(),
    };
    let q = parse(input)?;
    let num = 1024u128
        .checked_pow(q.binary)
        .and_then(|f| q.mantissa.checked_mul(f))
        .ok_or_else(out_of_range)?;
    let exp = q.exp10.saturating_add(scale);
    let magnitude = if num == 0 {
        0
    } else if exp >= 0 {
        u32::try_from(exp)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .and_then(|f| num.checked_mul(f))
            .ok_or_else(out_of_range)?
    } else {
        match exp
            .checked_neg()
            .and_then(|e| u32::try_from(e).ok())
            .and_then(|e| 10u128.checked_pow(e))
        {
            Some(den) => num / den + u128::from(num % den != 0),
            // The divisor exceeds any 38-digit numerator: a non-zero fraction below 1.
            None => 1,
        }
    };
    let magnitude = i64::try_from(magnitude).map_err(|_| out_of_range())?;
    Ok(if q.negative { -magnitude } else { magnitude })
}

fn parse(input: &str) -> Result<Parsed, QuantityError> {
    let syntax = |reason| QuantityError::Syntax {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(syntax("no digits"));
    }
    if frac_part.contains('.') {
        return Err(syntax("more than one decimal point"));
    }
    let (binary, suffix_exp): (u32, i64) = match suffix {
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => {
            let exp = other
                .strip_prefix(['e', 'E'])
                .ok_or_else(|| syntax("unknown suffix"))?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax("malformed exponent"));
            }
            let exp: i64 = exp.parse().map_err(|_| QuantityError::OutOfRange {
                input: input.to_owned(),
            })?;
            (0, exp)
        }
    };
    // All digits as one integer, scaled back by the fraction's length. Leading and
    // trailing zeros carry no precision.
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    let trailing_zeros = significant.len() - trimmed.len();
    if trimmed.len() > MAX_DIGITS {
        return Err(QuantityError::OutOfRange {
            input: input.to_owned(),
        });
    }
    let mantissa: u128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().map_err(|_| syntax("malformed number"))?
    };
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| syntax("malformed number"))?;
    let trailing_zeros = i64::try_from(trailing_zeros).map_err(|_| syntax("malformed number"))?;
    let exp10 = suffix_exp
        .checked_add(trailing_zeros)
        .and_then(|e| e.checked_sub(frac_len))
        .ok_or_else(|| QuantityError::OutOfRange {
            input: input.to_owned(),
        })?;
    Ok(Parsed {
        negative,
        mantissa,
        binary,
        exp10,
    })
}

#[cfg(test)]
mod tests;
