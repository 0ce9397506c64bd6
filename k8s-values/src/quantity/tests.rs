use super::*;

#[test]
fn cpu_forms() {
    assert_eq!(milli_value("100m"), Ok(100));
    assert_eq!(milli_value("0.5"), Ok(500));
    assert_eq!(milli_value("1"), Ok(1000));
    assert_eq!(milli_value("2.25"), Ok(2250));
    assert_eq!(milli_value(".1"), Ok(100));
    assert_eq!(milli_value("1."), Ok(1000));
    assert_eq!(milli_value("+1"), Ok(1000));
    assert_eq!(milli_value("1e3"), Ok(1_000_000));
    assert_eq!(milli_value("1E-3"), Ok(1));
    assert_eq!(milli_value("1e+3"), Ok(1_000_000));
    assert_eq!(milli_value("0"), Ok(0));
    assert_eq!(
        milli_value(" 250m "),
        Ok(250),
        "surrounding whitespace is ignored"
    );
}

#[test]
fn memory_forms() {
    assert_eq!(value("128Mi"), Ok(128 * 1024 * 1024));
    assert_eq!(value("1Gi"), Ok(1 << 30));
    assert_eq!(value("1G"), Ok(1_000_000_000));
    assert_eq!(value("1.5Ki"), Ok(1536));
    assert_eq!(value("1e3"), Ok(1000));
    assert_eq!(value("110"), Ok(110));
    assert_eq!(value("1Ti"), Ok(1 << 40));
    assert_eq!(value("100m"), Ok(1), "a fraction of a byte rounds up");
    assert_eq!(value("1000m"), Ok(1));
    assert_eq!(value("1001m"), Ok(2));
}

/// The suffixes the node agent's old `f64` parser rejected or rounded differently.
#[test]
fn suffixes_the_two_old_parsers_disagreed_on() {
    assert_eq!(
        milli_value("1n"),
        Ok(1),
        "a nanocore rounds up to a millicore"
    );
    assert_eq!(milli_value("1500000n"), Ok(2));
    assert_eq!(milli_value("1000000n"), Ok(1), "exactly one millicore");
    assert_eq!(milli_value("1u"), Ok(1));
    assert_eq!(milli_value("2000u"), Ok(2));
    assert_eq!(value("1P"), Ok(1_000_000_000_000_000));
    assert_eq!(value("1E"), Ok(1_000_000_000_000_000_000));
    assert_eq!(value("1Pi"), Ok(1 << 50));
    assert_eq!(value("1Ei"), Ok(1 << 60));
    assert_eq!(value("7Ei"), Ok(7 << 60));
    // Exact where f64 is not: 2^53 + 1 bytes.
    assert_eq!(value("9007199254740993"), Ok(9_007_199_254_740_993));
    assert_eq!(
        value("8Ei"),
        Err(QuantityError::OutOfRange {
            input: "8Ei".into()
        }),
        "2^63 does not fit i64"
    );
    assert!(milli_value("10E").is_err(), "10^22 millis overflow i64");
    assert!(value("16Ei").is_err(), "2^64 bytes overflow i64");
}

#[test]
fn negative_rounds_away_from_zero() {
    assert_eq!(milli_value("-100m"), Ok(-100));
    assert_eq!(milli_value("-1u"), Ok(-1));
    assert_eq!(value("-1.5"), Ok(-2));
    assert_eq!(value("-0"), Ok(0));
}

#[test]
fn extreme_exponents() {
    assert_eq!(value("0e999"), Ok(0), "zero stays zero");
    assert_eq!(
        value("1e-40"),
        Ok(1),
        "any positive fraction rounds up to 1"
    );
    assert_eq!(milli_value("1e-400000"), Ok(1));
    assert!(value("1e19").is_err());
    assert!(value("1e99999999999999999999").is_err());
    assert_eq!(
        value("0.000000000000000000000000000000000000000001e42"),
        Ok(1),
        "leading zeros are not significant digits"
    );
    assert_eq!(
        value("100000000000000000000000000000000000000000e-40"),
        Ok(10)
    );
}

#[test]
fn rejects_garbage() {
    for bad in [
        "", " ", "abc", "1.2.3", "1Qi", "m", "1e", "1ee3", ".", "-", "+-1", "1 m", "1Mi2", "1e1.5",
        "1e+", "0x10", "1k ", "1K",
    ] {
        let trimmed_ok = bad == "1k ";
        assert_eq!(value(bad).is_err(), !trimmed_ok, "{bad:?}");
    }
    assert!(matches!(
        value("1Qi"),
        Err(QuantityError::Syntax {
            reason: "unknown suffix",
            ..
        })
    ));
    assert!(matches!(
        value(&"9".repeat(39)),
        Err(QuantityError::OutOfRange { .. })
    ));
}
