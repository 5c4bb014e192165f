//! Small pieces the vendors' receipt verifiers share: reading a header, HMAC-SHA256, comparing
//! in constant time (`subtle`), judging a timestamp's age, and the secret `?token=` of vendors
//! that sign nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::receipt::{ReceiptError, ReceiptRequest};
use crate::domain::Timestamp;

/// How far a signed timestamp may be from now (either way) before the receipt is stale.
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// Header `name` as text; `None` when absent, empty or not visible ASCII.
pub fn header<'a>(request: &'a ReceiptRequest<'_>, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Unix seconds `text` within [`MAX_AGE_SECS`] of `now`.
///
/// # Errors
/// [`ReceiptError::Malformed`] when it is not a number, [`ReceiptError::Stale`] when too old or
/// too far ahead.
pub fn fresh_unix_seconds(text: &str, now: Timestamp) -> Result<(), ReceiptError> {
    let secs: i64 = text
        .parse()
        .map_err(|_| ReceiptError::Malformed("the signature timestamp is not a number".into()))?;
    if (now.as_millis() / 1000 - secs).abs() > MAX_AGE_SECS {
        return Err(ReceiptError::Stale);
    }
    Ok(())
}

/// Checks the secret `token` query parameter of `request.url` against `expected`, for vendors
/// that sign nothing: the callback URL configured at the vendor carries it.
///
/// # Errors
/// [`ReceiptError::Unsigned`] without a token, [`ReceiptError::BadSignature`] for another one.
pub fn query_token(request: &ReceiptRequest<'_>, expected: &str) -> Result<(), ReceiptError> {
    let query = request.url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let given: Vec<String> = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .collect();
    match given.as_slice() {
        [] => Err(ReceiptError::Unsigned),
        [token] if same(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ReceiptError::BadSignature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(url: &'a str, headers: &'a axum::http::HeaderMap) -> ReceiptRequest<'a> {
        ReceiptRequest {
            url,
            headers,
            body: b"",
            now: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    #[test]
    fn the_query_token_must_be_there_once_and_equal() {
        let h = axum::http::HeaderMap::new();
        let ok = "https://v.example/callbacks/infobip?token=abc%2Bdef";
        assert!(query_token(&request(ok, &h), "abc+def").is_ok());
        assert!(matches!(
            query_token(&request("https://v.example/cb", &h), "abc+def"),
            Err(ReceiptError::Unsigned)
        ));
        for bad in [
            "https://v.example/cb?token=abc",
            "https://v.example/cb?token=abc%2Bdef&token=abc%2Bdef",
            "https://v.example/cb?token=",
        ] {
            assert!(
                matches!(
                    query_token(&request(bad, &h), "abc+def"),
                    Err(ReceiptError::BadSignature)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamps_older_or_newer_than_five_minutes_are_stale() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        assert!(fresh_unix_seconds("1700000000", now).is_ok());
        assert!(fresh_unix_seconds("1699999700", now).is_ok());
        assert!(matches!(
            fresh_unix_seconds("1699999699", now),
            Err(ReceiptError::Stale)
        ));
        assert!(matches!(
            fresh_unix_seconds("1700000301", now),
            Err(ReceiptError::Stale)
        ));
        assert!(matches!(
            fresh_unix_seconds("soon", now),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
