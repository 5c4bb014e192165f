//! Keys derived from the server secrets, and the things done with them: keyed lookups of phone
//! numbers (HMAC-SHA256), code digests for constant-time comparison (HMAC-SHA256), encryption at
//! rest of phone numbers and resendable codes (XChaCha20-Poly1305), and rate-limit bucket keys.
//! The database alone therefore reveals neither a number nor a code.
//!
//! Rotation: `VERIFYD_SECRET` lists one or more secrets, newest first ([`ServerSecrets`]). New
//! data is written under the newest; every sealed value starts with the key id of the secret
//! that sealed it, so [`Keys::open`] picks the right one, and lookups and code comparisons try
//! every listed secret ([`Keys::phone_lookups`], [`Keys::code_matches`]). Digests that must not
//! change when the secrets rotate (rate-limit bucket keys, `Idempotency-Key` digests) come from
//! a *stable key*: 32 random bytes made once per database and kept in the store sealed under
//! each secret (see [`crate::rotation`]), so a number's buckets stay the same buckets across a
//! rotation. This module does no I/O.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

/// One server secret: at least 32 characters, from `VERIFYD_SECRET` or generated once.
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

    /// The id of the key this secret seals under (not secret: 4 bytes of an HKDF output).
    pub fn key_id(&self) -> KeyId {
        KeySet::derive(self).key_id
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// The configured server secrets, newest first (never empty): the newest seals and keys new
/// data; the others only open and find what was written before a rotation.
#[derive(Clone, Debug)]
pub struct ServerSecrets(Vec<ServerSecret>);

/// Why a `VERIFYD_SECRET` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("list at least one secret")]
    Empty,
    #[error("secret #{position} (newest first) {source}")]
    TooShort {
        position: usize,
        source: SecretTooShort,
    },
    #[error(
        "secrets #{first} and #{second} are the same secret (or share a key id): list each once"
    )]
    Duplicate { first: usize, second: usize },
}

impl ServerSecrets {
    /// Parses `VERIFYD_SECRET`: one secret, or several separated by commas, newest first
    /// (surrounding spaces are ignored; a secret cannot contain a comma).
    ///
    /// # Errors
    /// [`SecretsError`] (the text never includes a secret).
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let mut secrets: Vec<ServerSecret> = Vec::new();
        let mut ids: Vec<KeyId> = Vec::new();
        for (i, part) in text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let secret =
                ServerSecret::new(SecretString::from(part.to_owned())).map_err(|source| {
                    SecretsError::TooShort {
                        position: i + 1,
                        source,
                    }
                })?;
            let id = secret.key_id();
            if let Some(j) = ids.iter().position(|k| *k == id) {
                return Err(SecretsError::Duplicate {
                    first: j + 1,
                    second: i + 1,
                });
            }
            ids.push(id);
            secrets.push(secret);
        }
        if secrets.is_empty() {
            return Err(SecretsError::Empty);
        }
        Ok(Self(secrets))
    }

    /// A single secret (generated, or read from its file).
    pub fn single(secret: ServerSecret) -> Self {
        Self(vec![secret])
    }

    /// The secret new data is written under.
    pub fn newest(&self) -> &ServerSecret {
        &self.0[0]
    }

    /// Every secret, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &ServerSecret> {
        self.0.iter()
    }

    /// How many secrets are listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a list has at least one secret); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which secret sealed a value: the first 4 bytes of an HKDF output of that secret, stored in
/// front of every ciphertext. Not secret, and shown in logs and error messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of a sealed value, if it is long enough to have one.
    pub fn of_sealed(sealed: &[u8]) -> Option<KeyId> {
        let bytes = sealed.get(1..=KEY_ID_LEN)?;
        <[u8; KEY_ID_LEN]>::try_from(bytes).ok().map(KeyId)
    }

    /// From its stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyId> {
        <[u8; KEY_ID_LEN]>::try_from(bytes).ok().map(KeyId)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
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
/// Length of a [`KeyId`].
pub const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;

/// The keys of one server secret, each for a single purpose.
struct KeySet {
    phone_lookup: HmacSha256,
    code_mac: HmacSha256,
    cipher: XChaCha20Poly1305,
    key_id: KeyId,
}

fn hkdf_expand(ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"verifyd/v1"), ikm);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    hk.expand(info, &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

impl KeySet {
    fn derive(secret: &ServerSecret) -> Self {
        let ikm = secret.expose().as_bytes();
        let enc = hkdf_expand(ikm, b"encryption");
        let id = hkdf_expand(ikm, b"key-id");
        Self {
            phone_lookup: keyed(&hkdf_expand(ikm, b"phone-lookup")),
            code_mac: keyed(&hkdf_expand(ikm, b"code-mac")),
            cipher: XChaCha20Poly1305::new((&enc).into()),
            key_id: KeyId([id[0], id[1], id[2], id[3]]),
        }
    }

    fn phone_lookup(&self, e164: &str) -> [u8; 32] {
        mac(&self.phone_lookup, &[b"phone:", e164.as_bytes()])
    }

    fn code_digest(&self, verification_sid: &str, code: &str) -> [u8; 32] {
        mac(
            &self.code_mac,
            &[verification_sid.as_bytes(), b":", code.as_bytes()],
        )
    }
}

/// The per-database key behind digests that must survive a rotation: 32 random bytes, made once
/// per database and stored sealed under each configured secret.
pub struct StableKey([u8; 32]);

impl StableKey {
    /// 256 fresh random bits (a new database).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// From its stored (opened) bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The bytes, to seal them into the store.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derived from one secret: for tools and tests that have no store
    /// ([`Keys::derive`]).
    fn derived_from(secret: &ServerSecret) -> Self {
        Self(hkdf_expand(secret.expose().as_bytes(), b"stable-key"))
    }
}

impl PartialEq for StableKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Debug for StableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StableKey(<redacted>)")
    }
}

/// Every key verifyd uses: one [`KeySet`] per configured secret (newest first) and the keys
/// derived from the database's [`StableKey`].
pub struct Keys {
    sets: Vec<KeySet>,
    bucket: HmacSha256,
    stable_lookup: HmacSha256,
}

impl Keys {
    /// The keys of one secret, with a stable key derived from that secret (for tools and tests
    /// without a store; the service uses [`Keys::new`] with the database's stable key).
    pub fn derive(secret: &ServerSecret) -> Self {
        Self::new(
            &ServerSecrets::single(secret.clone()),
            &StableKey::derived_from(secret),
        )
    }

    /// The keys of every configured secret, newest first, and of the database's stable key.
    pub fn new(secrets: &ServerSecrets, stable: &StableKey) -> Self {
        Self {
            sets: secrets.iter().map(KeySet::derive).collect(),
            bucket: keyed(&hkdf_expand(&stable.0, b"bucket-key")),
            stable_lookup: keyed(&hkdf_expand(&stable.0, b"stable-lookup")),
        }
    }

    fn newest(&self) -> &KeySet {
        &self.sets[0]
    }

    /// The key id new data is sealed under.
    pub fn newest_key_id(&self) -> KeyId {
        self.newest().key_id
    }

    /// Every configured key id, newest first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.sets.iter().map(|s| s.key_id).collect()
    }

    /// Whether one of the configured secrets has this key id.
    pub fn knows(&self, id: KeyId) -> bool {
        self.sets.iter().any(|s| s.key_id == id)
    }

    /// The keyed digest a number is stored under (newest secret: for writing).
    pub fn phone_lookup(&self, e164: &str) -> [u8; 32] {
        self.newest().phone_lookup(e164)
    }

    /// The number's digest under every configured secret, newest first: a verification written
    /// before a rotation is found under an older one.
    pub fn phone_lookups(&self, e164: &str) -> Vec<[u8; 32]> {
        self.sets.iter().map(|s| s.phone_lookup(e164)).collect()
    }

    /// A rate-limit key for personal data (a number, a prefix, a user): 96 bits of a digest
    /// under the stable key in hex, so limiter keys (which may live in Redis) never hold a phone
    /// number and stay the same across secret rotations.
    pub fn bucket_key(&self, label: &str, value: &str) -> String {
        let d = mac(&self.bucket, &[label.as_bytes(), b":", value.as_bytes()]);
        hex::encode(&d[..12])
    }

    /// A keyed 256-bit digest for looking up other data (idempotency keys scoped to their
    /// caller), under the stable key with its own label: the same across rotations.
    pub fn lookup_digest(&self, label: &str, value: &str) -> [u8; 32] {
        mac(
            &self.stable_lookup,
            &[label.as_bytes(), b":", value.as_bytes()],
        )
    }

    /// The digest kept for comparison with a submitted code, bound to its verification
    /// (newest secret: for writing).
    pub fn code_digest(&self, verification_sid: &str, code: &str) -> [u8; 32] {
        self.newest().code_digest(verification_sid, code)
    }

    /// Whether `code` matches a stored digest made under any configured secret. Every secret
    /// is tried and compared in constant time, whichever matches.
    pub fn code_matches(&self, stored: &[u8], verification_sid: &str, code: &str) -> bool {
        let mut found = Choice::from(0);
        for set in &self.sets {
            let computed = set.code_digest(verification_sid, code);
            found |= Choice::from(u8::from(Self::digests_match(stored, &computed)));
        }
        bool::from(found)
    }

    /// Constant-time equality of a stored digest and a freshly computed one.
    pub fn digests_match(stored: &[u8], computed: &[u8; 32]) -> bool {
        stored.len() == computed.len() && bool::from(stored.ct_eq(computed))
    }

    /// Encrypts `plaintext` under the newest secret, binding it to `context` (for example the
    /// row it belongs to), with a fresh random 192-bit nonce. Layout: version, key id, nonce,
    /// ciphertext and tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let set = self.newest();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = set
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
        out.extend_from_slice(&set.key_id.0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`, under whichever
    /// configured secret its key id names.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKey`] when a secret that is not configured sealed it,
    /// [`CryptoError::Corrupt`] when the bytes or the context do not match.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != SEAL_VERSION {
            return Err(CryptoError::Corrupt);
        }
        let key_id = KeyId::of_sealed(sealed).ok_or(CryptoError::Corrupt)?;
        let set = self
            .sets
            .iter()
            .find(|s| s.key_id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        let nonce = XNonce::from_slice(&sealed[1 + KEY_ID_LEN..header]);
        set.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[header..],
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Corrupt)
    }

    /// Whether a sealed value was sealed under the newest secret (nothing to re-key).
    pub fn is_newest(&self, sealed: &[u8]) -> bool {
        KeyId::of_sealed(sealed) == Some(self.newest_key_id())
    }
}

/// An HMAC state with its key already absorbed: [`mac`] clones it instead of hashing the key
/// pads again for every digest (two SHA-256 blocks saved per digest).
fn keyed(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn mac(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = keyed.clone();
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

    fn ring(text: &str, stable: &StableKey) -> Keys {
        Keys::new(&ServerSecrets::parse(text).unwrap(), stable)
    }

    #[test]
    fn secret_needs_32_characters() {
        assert!(ServerSecret::new(SecretString::from("x".repeat(31))).is_err());
        assert!(ServerSecret::new(SecretString::from("x".repeat(32))).is_ok());
        assert_eq!(ServerSecret::generate().expose().len(), 64);
    }

    #[test]
    fn a_secret_list_is_newest_first_and_refuses_short_or_repeated_secrets() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let list = ServerSecrets::parse(&format!(" {b} , {a} ")).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.newest().expose(), b);
        assert_eq!(
            ServerSecrets::parse(&format!("{b},short")).unwrap_err(),
            SecretsError::TooShort {
                position: 2,
                source: SecretTooShort { min: 32 }
            }
        );
        assert_eq!(
            ServerSecrets::parse(&format!("{a},{b},{a}")).unwrap_err(),
            SecretsError::Duplicate {
                first: 1,
                second: 3
            }
        );
        assert_eq!(
            ServerSecrets::parse(" , ").unwrap_err(),
            SecretsError::Empty
        );
        let err = ServerSecrets::parse(&format!("{b},too-short-secret"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("#2") && !err.contains("too-short-secret"),
            "{err}"
        );
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
    fn after_a_rotation_old_data_opens_matches_and_is_found_while_new_data_uses_the_newest() {
        let a = "a".repeat(32);
        let b = "b".repeat(32);
        let stable = StableKey::generate();
        let old = ring(&a, &stable);
        let rotated = ring(&format!("{b},{a}"), &stable);
        let sealed = old.seal(b"123456", b"VE1");
        let digest = old.code_digest("VE1", "123456");
        assert_eq!(rotated.open(&sealed, b"VE1").unwrap(), b"123456");
        assert!(rotated.code_matches(&digest, "VE1", "123456"));
        assert!(!rotated.code_matches(&digest, "VE1", "123457"));
        assert!(
            rotated
                .phone_lookups("+14155552671")
                .contains(&old.phone_lookup("+14155552671"))
        );
        assert_ne!(rotated.newest_key_id(), old.newest_key_id());
        assert!(rotated.is_newest(&rotated.seal(b"x", b"c")));
        assert!(!rotated.is_newest(&sealed));
        // With the old secret gone, old data no longer opens, and says which key it needs.
        let new_only = ring(&b, &stable);
        assert_eq!(
            new_only.open(&sealed, b"VE1"),
            Err(CryptoError::UnknownKey(old.newest_key_id().to_string()))
        );
    }

    #[test]
    fn bucket_and_idempotency_digests_follow_the_stable_key_not_the_secrets() {
        let a = "a".repeat(32);
        let b = "b".repeat(32);
        let stable = StableKey::from_slice(&[7u8; 32]).unwrap();
        let before = ring(&a, &stable);
        let during = ring(&format!("{b},{a}"), &stable);
        let after = ring(&b, &stable);
        for k in [&during, &after] {
            assert_eq!(
                k.bucket_key("phone", "+14155552671"),
                before.bucket_key("phone", "+14155552671")
            );
            assert_eq!(
                k.lookup_digest("idempotency", "key:1\nabc"),
                before.lookup_digest("idempotency", "key:1\nabc")
            );
        }
        let other = ring(&a, &StableKey::from_slice(&[8u8; 32]).unwrap());
        assert_ne!(
            other.bucket_key("phone", "+14155552671"),
            before.bucket_key("phone", "+14155552671")
        );
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
        assert!(a.code_matches(&d, "VE1", "123456"));
        assert!(!b.code_matches(&d, "VE1", "123456"));
    }
}
