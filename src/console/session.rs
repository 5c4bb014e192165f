//! Console sessions and CSRF tokens, with nothing kept on the server: a session is a cookie
//! `v1.<expires ms>.<key id>.<nonce>.<mac>`, where the MAC is HMAC-SHA256 under a key derived
//! from the database's stable key (itself opened with the server secret), so every replica that
//! shares the database and `VERIFYD_SECRET` accepts it, and nobody without them can make one.
//! The key id is the first 8 bytes of the API key's digest: a session ends when its key is no
//! longer accepted. A form's CSRF token is a MAC of the session's nonce, so it is good for one
//! session only and a page of another origin cannot know it.
//!
//! What it does not do: keep a list of ended sessions. Logout removes the cookie from the
//! browser; a copy taken before then stays valid until it expires (12 h at most).

use std::time::Duration;

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::crypto::Keys;
use crate::domain::Timestamp;
use crate::http::ApiKeys;

/// The cookie's name.
pub const COOKIE: &str = "verifyd_console";
/// How long a session lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

const MAC_LABEL: &str = "console-session";
const CSRF_LABEL: &str = "console-csrf";

/// A session the cookie proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub expires: Timestamp,
    /// Hex of the first 8 bytes of the API key's digest.
    key_id: String,
    /// 16 random bytes in hex.
    nonce: String,
}

/// Why a cookie opens no session (said to nobody but the log: every case shows the login page).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no session cookie")]
    Missing,
    #[error("the session cookie is malformed or its signature is wrong")]
    Forged,
    #[error("the session expired")]
    Expired,
    #[error("the session's API key is no longer accepted")]
    KeyRevoked,
}

impl Session {
    /// A new session for the API key with `digest`, expiring [`LIFETIME`] after `now`.
    pub fn new(digest: &[u8; 32], now: Timestamp) -> Self {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        Self {
            expires: now.plus(LIFETIME),
            key_id: hex::encode(&digest[..8]),
            nonce: hex::encode(nonce),
        }
    }

    fn payload(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.expires.as_millis(),
            self.key_id,
            self.nonce
        )
    }

    /// The cookie's value.
    pub fn cookie_value(&self, keys: &Keys) -> String {
        let payload = self.payload();
        let mac = keys.lookup_digest(MAC_LABEL, &payload);
        format!("{payload}.{}", hex::encode(mac))
    }

    /// The session `value` proves at `now`, if its key is still one of `api_keys`.
    ///
    /// # Errors
    /// [`SessionError`]: forged, expired, or its key revoked.
    pub fn open(
        value: &str,
        keys: &Keys,
        api_keys: &ApiKeys,
        now: Timestamp,
    ) -> Result<Self, SessionError> {
        let (payload, mac) = value.rsplit_once('.').ok_or(SessionError::Forged)?;
        let mac = hex::decode(mac).map_err(|_| SessionError::Forged)?;
        let expected = keys.lookup_digest(MAC_LABEL, payload);
        if mac.len() != expected.len() || !bool::from(mac.ct_eq(&expected)) {
            return Err(SessionError::Forged);
        }
        let mut parts = payload.split('.');
        let (Some("v1"), Some(expires), Some(key_id), Some(nonce), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SessionError::Forged);
        };
        let expires = expires
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|_| SessionError::Forged)?;
        if now.as_millis() >= expires.as_millis() {
            return Err(SessionError::Expired);
        }
        let key_prefix = hex::decode(key_id).map_err(|_| SessionError::Forged)?;
        if !api_keys.has_digest_prefix(&key_prefix) {
            return Err(SessionError::KeyRevoked);
        }
        Ok(Self {
            expires,
            key_id: key_id.to_owned(),
            nonce: nonce.to_owned(),
        })
    }

    /// The CSRF token of this session's forms.
    pub fn csrf(&self, keys: &Keys) -> String {
        hex::encode(keys.lookup_digest(CSRF_LABEL, &self.nonce))
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, keys: &Keys, presented: &str) -> bool {
        let expected = self.csrf(keys);
        presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// The `Set-Cookie` value that opens `session` (`secure`: add `Secure`).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_in<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ServerSecret, api_key_digest};

    fn keys(secret: &str) -> Keys {
        Keys::derive(&ServerSecret::new(secrecy::SecretString::from(secret.to_owned())).unwrap())
    }

    const KEY: &str = "console-key-0123456789";

    #[test]
    fn a_session_opens_until_it_expires_and_only_under_its_keys() {
        let k = keys("secret-one-0123456789-0123456789-abcd");
        let api = ApiKeys::from_digests(vec![api_key_digest(KEY)]);
        let now = Timestamp::from_millis(1_000_000);
        let s = Session::new(&api_key_digest(KEY), now);
        let value = s.cookie_value(&k);
        assert_eq!(Session::open(&value, &k, &api, now), Ok(s.clone()));
        let late = now.plus(LIFETIME);
        assert_eq!(
            Session::open(&value, &k, &api, late),
            Err(SessionError::Expired)
        );
        let other = keys("secret-two-0123456789-0123456789-abcd");
        assert_eq!(
            Session::open(&value, &other, &api, now),
            Err(SessionError::Forged)
        );
        let revoked = ApiKeys::from_digests(vec![api_key_digest("another-key-0123456789")]);
        assert_eq!(
            Session::open(&value, &k, &revoked, now),
            Err(SessionError::KeyRevoked)
        );
    }

    #[test]
    fn a_changed_cookie_is_forged() {
        let k = keys("secret-one-0123456789-0123456789-abcd");
        let api = ApiKeys::from_digests(vec![api_key_digest(KEY)]);
        let now = Timestamp::from_millis(1_000_000);
        let value = Session::new(&api_key_digest(KEY), now).cookie_value(&k);
        // A later expiry with the old signature.
        let (payload, mac) = value.rsplit_once('.').unwrap();
        let mut parts: Vec<&str> = payload.split('.').collect();
        let later = (now.as_millis() + 10 * LIFETIME.as_millis() as i64).to_string();
        parts[1] = &later;
        let tampered = format!("{}.{mac}", parts.join("."));
        for bad in [
            tampered.as_str(),
            "",
            "v1",
            "v1.1.2.3.zz",
            &value[..value.len() - 1],
        ] {
            assert_eq!(
                Session::open(bad, &k, &api, now),
                Err(SessionError::Forged),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let k = keys("secret-one-0123456789-0123456789-abcd");
        let now = Timestamp::from_millis(1_000_000);
        let a = Session::new(&api_key_digest(KEY), now);
        let b = Session::new(&api_key_digest(KEY), now);
        assert!(a.csrf_matches(&k, &a.csrf(&k)));
        assert!(!a.csrf_matches(&k, &b.csrf(&k)));
        assert!(!a.csrf_matches(&k, ""));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_in(["a=1; verifyd_console=v1.x; b=2"]), Some("v1.x"));
        assert_eq!(cookie_in(["a=1", "b=2"]), None);
    }
}
