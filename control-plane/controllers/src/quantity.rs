//! Parsing of Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1Gi`, `1e3`).

/// Why a quantity did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {input:?}")]
pub struct QuantityError {
    /// The rejected text.
    pub input: String,
}

/// Parses a quantity into thousandths of its unit, rounding up (`100m` -> 100, `1` -> 1000,
/// `1Ki` -> 1 024 000).
///
/// # Errors
/// Malformed text, or a value too large for `i128`.
pub fn parse_milli(input: &str) -> Result<i128, QuantityError> {
    let err = || QuantityError {
        input: input.to_string(),
    };
    let s = input.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(err());
    }
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return Err(err());
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err())?
    };
    // value = mantissa * base^exp / 10^frac_len; keep numerator/denominator exact.
    let (mut num, mut den): (i128, i128) = (mantissa.checked_mul(1000).ok_or_else(err)?, 1);
    den = den
        .checked_mul(pow(10, u32::try_from(frac_part.len()).map_err(|_| err())?).ok_or_else(err)?)
        .ok_or_else(err)?;
    let (base, exp): (i128, i32) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        other => {
            let exp = other.strip_prefix(['e', 'E']).ok_or_else(err)?;
            let exp: i32 = exp.parse().map_err(|_| err())?;
            (10, exp)
        }
    };
    let factor = pow(base, exp.unsigned_abs()).ok_or_else(err)?;
    if exp >= 0 {
        num = num.checked_mul(factor).ok_or_else(err)?;
    } else {
        den = den.checked_mul(factor).ok_or_else(err)?;
    }
    let value = num.div_euclid(den) + i128::from(num.rem_euclid(den) != 0);
    Ok(if negative { -value } else { value })
}

fn pow(base: i128, exp: u32) -> Option<i128> {
    base.checked_pow(exp)
}

/// CPU in millicores, rounded up (`0.5` -> 500, `100m` -> 100).
///
/// # Errors
/// See [`parse_milli`].
pub fn cpu_millis(input: &str) -> Result<i64, QuantityError> {
    let v = parse_milli(input)?;
    i64::try_from(v).map_err(|_| QuantityError {
        input: input.to_string(),
    })
}

/// A count of bytes (or plain units such as pods), rounded up (`1Gi` -> 1 073 741 824).
///
/// # Errors
/// See [`parse_milli`].
pub fn units(input: &str) -> Result<i64, QuantityError> {
    let v = parse_milli(input)?;
    let whole = v.div_euclid(1000) + i128::from(v.rem_euclid(1000) != 0);
    i64::try_from(whole).map_err(|_| QuantityError {
        input: input.to_string(),
    })
}

#[cfg(test)]
mod tests;
