//! Keys derived from the server secret, and the three things done with them: keyed lookups of
//! phone numbers (HMAC-SHA256), code digests for constant-time comparison (HMAC-SHA256), and
//! encryption at rest of phone numbers and resendable codes (XChaCha20-Poly1305). The database
//! alone therefore reveals neither a number nor a code.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The server secret: at least 32 characters, from `VERIFYD_SECRET` or generated once.
#[derive(Clone)]
pub struct ServerSecret(SecretString);

/// The secret is too short to derive keys from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be at least {min} characters long")]
pub struct SecretTooShort {
    pub min: usize,
}

impl ServerSecret {
    /// Minimum length in characters.
    pub const MIN_CHARS: usize = 32;

    /// Accepts any string of at least 32 characters.
    ///
    /// # Errors
    /// [`SecretTooShort`] for shorter strings.
    pub fn new(secret: SecretString) -> Result<Self, SecretTooShort> {
        if secret.expose_secret().chars().count() < Self::MIN_CHARS {
            return Err(SecretTooShort {
                min: Self::MIN_CHARS,
            });
        }
        Ok(Self(secret))
    }

    /// 256 random bits as 64 hex characters.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(SecretString::from(hex::encode(bytes)))
    }

    /// The secret text (to write it to its file once).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// Stored ciphertexts could not be opened with this key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext was written under a key this server does not have (key id {0})")]
    UnknownKey(String),
    #[error("ciphertext is corrupt or was tampered with")]
    Corrupt,
}

const SEAL_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;

/// Keys derived with HKDF-SHA256 from one server secret, each for a single purpose.
pub struct Keys {
    phone_lookup: [u8; 32],
    bucket: [u8; 32],
    code_mac: [u8; 32],
    cipher: XChaCha20Poly1305,
    key_id: [u8; KEY_ID_LEN],
}

impl Keys {
    /// Derives the purpose keys from `secret`.
    pub fn derive(secret: &ServerSecret) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"verifyd/v1"), secret.expose().as_bytes());
        let expand = |info: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
            hk.expand(info, &mut out)
                .expect("32 bytes is a valid HKDF length");
            out
        };
        let enc = expand(b"encryption");
        let id = expand(b"key-id");
        Self {
            phone_lookup: expand(b"phone-lookup"),
            bucket: expand(b"bucket-key"),
            code_mac: expand(b"code-mac"),
            cipher: XChaCha20Poly1305::new((&enc).into()),
            key_id: [id[0], id[1], id[2], id[3]],
        }
    }

    /// The keyed digest under which a number is looked up (same number → same digest).
    pub fn phone_lookup(&self, e164: &str) -> [u8; 32] {
        mac(&self.phone_lookup, &[b"phone:", e164.as_bytes()])
    }

    /// A rate-limit key for personal data (a number, a prefix): 96 bits of a keyed digest in
    /// hex, so limiter keys (which may live in Redis) never hold a phone number.
    pub fn bucket_key(&self, label: &str, value: &str) -> String {
        let d = mac(&self.bucket, &[label.as_bytes(), b":", value.as_bytes()]);
        hex::encode(&d[..12])
    }

    /// A keyed 256-bit digest for looking up other personal data (idempotency keys scoped to
    /// their caller), under the lookup key with its own label.
    pub fn lookup_digest(&self, label: &str, value: &str) -> [u8; 32] {
        mac(
            &self.phone_lookup,
            &[label.as_bytes(), b":", value.as_bytes()],
        )
    }

    /// The digest kept for comparison with a submitted code, bound to its verification.
    pub fn code_digest(&self, verification_sid: &str, code: &str) -> [u8; 32] {
        mac(
            &self.code_mac,
            &[verification_sid.as_bytes(), b":", code.as_bytes()],
        )
    }

    /// Constant-time equality of a stored digest and a freshly computed one.
    pub fn digests_match(stored: &[u8], computed: &[u8; 32]) -> bool {
        stored.len() == computed.len() && bool::from(stored.ct_eq(computed))
    }

    /// Encrypts `plaintext`, binding it to `context` (for example the row it belongs to), with a
    /// fresh random 192-bit nonce. Layout: version, key id, nonce, ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a short message cannot fail");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKey`] when another secret sealed it, [`CryptoError::Corrupt`] when
    /// the bytes or the context do not match.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != SEAL_VERSION {
            return Err(CryptoError::Corrupt);
        }
        let key_id = &sealed[1..1 + KEY_ID_LEN];
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKey(hex::encode(key_id)));
        }
        let nonce = XNonce::from_slice(&sealed[1 + KEY_ID_LEN..header]);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[header..],
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Corrupt)
    }
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// SHA-256 of an API key: what is kept of keys, so a stored or configured key list never holds
/// a usable key.
pub fn api_key_digest(key: &str) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Keys {
        Keys::derive(&ServerSecret::new(SecretString::from(s.to_owned())).unwrap())
    }

    #[test]
    fn secret_needs_32_characters() {
        assert!(ServerSecret::new(SecretString::from("x".repeat(31))).is_err());
        assert!(ServerSecret::new(SecretString::from("x".repeat(32))).is_ok());
        assert_eq!(ServerSecret::generate().expose().len(), 64);
    }

    #[test]
    fn seal_round_trips_and_binds_context() {
        let k = keys(&"a".repeat(32));
        let sealed = k.seal(b"123456", b"VE1");
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(k.open(&sealed, b"VE1").unwrap(), b"123456");
        assert_eq!(k.open(&sealed, b"VE2"), Err(CryptoError::Corrupt));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&tampered, b"VE1"), Err(CryptoError::Corrupt));
        assert!(matches!(
            keys(&"b".repeat(32)).open(&sealed, b"VE1"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn digests_depend_on_secret_and_context() {
        let a = keys(&"a".repeat(32));
        let b = keys(&"b".repeat(32));
        assert_eq!(
            a.phone_lookup("+14155552671"),
            a.phone_lookup("+14155552671")
        );
        assert_ne!(
            a.phone_lookup("+14155552671"),
            b.phone_lookup("+14155552671")
        );
        assert_ne!(
            a.code_digest("VE1", "123456"),
            a.code_digest("VE2", "123456")
        );
        let d = a.code_digest("VE1", "123456");
        assert!(Keys::digests_match(&d, &a.code_digest("VE1", "123456")));
        assert!(!Keys::digests_match(&d, &a.code_digest("VE1", "123457")));
        assert!(!Keys::digests_match(&d[..31], &d));
    }
}
