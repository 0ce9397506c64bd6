use super::*;

#[test]
fn cpu_forms() {
    assert_eq!(cpu_millis("100m"), Ok(100));
    assert_eq!(cpu_millis("0.5"), Ok(500));
    assert_eq!(cpu_millis("1"), Ok(1000));
    assert_eq!(cpu_millis("2.25"), Ok(2250));
    assert_eq!(cpu_millis(".1"), Ok(100));
    assert_eq!(cpu_millis("1e3"), Ok(1_000_000));
    assert_eq!(cpu_millis("1E-3"), Ok(1));
    assert_eq!(cpu_millis("1u"), Ok(1), "rounds up");
    assert_eq!(cpu_millis("0"), Ok(0));
}

#[test]
fn memory_forms() {
    assert_eq!(units("128Mi"), Ok(128 * 1024 * 1024));
    assert_eq!(units("1Gi"), Ok(1 << 30));
    assert_eq!(units("1G"), Ok(1_000_000_000));
    assert_eq!(units("1.5Ki"), Ok(1536));
    assert_eq!(units("1e3"), Ok(1000));
    assert_eq!(units("110"), Ok(110));
    assert_eq!(units("100m"), Ok(1), "a fraction of a byte rounds up");
    assert!(units("16Ei").is_err(), "2^64 bytes overflow i64");
}

#[test]
fn rejects_garbage() {
    for bad in ["", "abc", "1.2.3", "1Qi", "m", "1e", "1ee3", "."] {
        assert!(parse_milli(bad).is_err(), "{bad} should fail");
    }
    assert!(units("99999999999999999999999999Ei").is_err());
}

#[test]
fn negative() {
    assert_eq!(cpu_millis("-100m"), Ok(-100));
}
