//! Twilio's resource identifiers: a two-letter prefix and 32 hex digits (`VA…`, `AC…`, `RK…`).
//! Generated ones start with their creation time, like verifyd's `VE`/`VL` sids, so listing in
//! sid order is listing in creation order.

use rand::RngCore;

/// A new sid with `prefix`: 12 hex digits of milliseconds since 1970, then 20 random ones.
pub fn generate(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&(u64::try_from(millis).unwrap_or(0)).to_be_bytes()[2..]);
    rand::rng().fill_bytes(&mut bytes[6..]);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Whether `s` is `prefix` followed by exactly 32 hex digits.
pub fn valid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sids_are_valid_and_ordered() {
        let a = generate("VA");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = generate("VA");
        assert!(valid(&a, "VA") && valid(&b, "VA"));
        assert!(a < b);
        assert!(!valid(&a, "AC"));
        assert!(!valid("VA123", "VA"));
        assert!(!valid("VAzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "VA"));
    }
}
