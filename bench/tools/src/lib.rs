//! Shared pieces of the benchmark helpers: the numbering scheme that the Lua load scripts in
//! `bench/lua/` mirror (index `k` → one distinct, valid US number), the fixed codes of the
//! verify pool, and reading peak memory from `/proc/self/status`.
//!
//! Numbers: `k` in `0..NUMBERS` is `+1 212 EEE LLLL` with exchange `EEE = 200 + k / 10000` and
//! line `LLLL = k % 10000` (New York, FixedLineOrMobile in libphonenumber's metadata; every one
//! parses as valid: `bench-seed check-numbers` proves it for the range a run uses).

/// How many distinct numbers the scheme has (exchanges 200–999).
pub const NUMBERS: u64 = 8_000_000;

/// The E.164 number with index `k` (wrapping at [`NUMBERS`]).
pub fn number(k: u64) -> String {
    let k = k % NUMBERS;
    format!("+1212{:03}{:04}", 200 + k / 10_000, k % 10_000)
}

/// The fixed code of pool number `k` (a test number): the last six digits of the number.
pub fn right_code(k: u64) -> String {
    let n = number(k);
    n[n.len() - 6..].to_owned()
}

/// A code that is never right for pool number `k`: the right one with its last digit changed.
pub fn wrong_code(k: u64) -> String {
    let mut code = right_code(k).into_bytes();
    let last = code.len() - 1;
    code[last] = b'0' + (code[last] - b'0' + 1) % 10;
    String::from_utf8(code).expect("ASCII digits")
}

/// A value (in kB) from `/proc/self/status`, such as `VmHWM` (peak resident set) or `VmRSS`.
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_matches_the_lua_scripts() {
        assert_eq!(number(0), "+12122000000");
        assert_eq!(number(12_345), "+12122012345");
        assert_eq!(number(NUMBERS - 1), "+12129999999");
        assert_eq!(right_code(12_345), "012345");
        assert_eq!(wrong_code(12_345), "012346");
        assert_eq!(wrong_code(9), "000000");
    }
}
