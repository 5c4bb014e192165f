//! The settings of the SMS vendors beyond Twilio Messaging and the webhook, each under its
//! vendor's own credential names, read only when the sender or a route uses that vendor.

use std::fmt;

use secrecy::SecretString;

use super::parse::{parse_url, sender_id};
use super::settings::{
    ENV_TELNYX_API_KEY, ENV_TELNYX_BASE_URL, ENV_TELNYX_FROM, ENV_TELNYX_MESSAGING_PROFILE_ID,
    ENV_TELNYX_PUBLIC_KEY, ENV_VONAGE_API_KEY, ENV_VONAGE_API_SECRET, ENV_VONAGE_BASE_URL,
    ENV_VONAGE_FROM, ENV_VONAGE_SIGNATURE_SECRET,
};
use super::source::Reader;

/// The `telnyx` vendor's settings.
#[derive(Clone)]
pub struct TelnyxConfig {
    pub api_key: SecretString,
    /// `from`: a number or sender ID (optional with a messaging profile's number pool).
    pub from: Option<String>,
    pub messaging_profile_id: Option<String>,
    pub base_url: String,
    /// `TELNYX_PUBLIC_KEY`: verifies the receipts (none: receipts neither asked for nor taken).
    pub public_key: Option<[u8; 32]>,
}

impl fmt::Debug for TelnyxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelnyxConfig")
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .field("messaging_profile_id", &self.messaging_profile_id)
            .field("base_url", &self.base_url)
            .field("public_key", &self.public_key.is_some())
            .finish()
    }
}

/// A setting's trimmed value, `None` when unset or empty.
fn set(r: &mut Reader<'_>, name: &'static str) -> Option<String> {
    r.raw(name)
        .0
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Reads `TELNYX_*`: the key, and a sender or a messaging profile, are required.
pub(super) fn read_telnyx(r: &mut Reader<'_>) -> Option<TelnyxConfig> {
    let api_key = set(r, ENV_TELNYX_API_KEY);
    if api_key.is_none() {
        r.problem(
            ENV_TELNYX_API_KEY,
            "",
            "the telnyx vendor needs TELNYX_API_KEY",
        );
    }
    let from = set(r, ENV_TELNYX_FROM);
    if let Some(v) = &from
        && let Err(e) = sender_id(v)
    {
        r.problem(ENV_TELNYX_FROM, v, e);
    }
    let messaging_profile_id = set(r, ENV_TELNYX_MESSAGING_PROFILE_ID);
    if from.is_none() && messaging_profile_id.is_none() {
        r.problem(
            ENV_TELNYX_FROM,
            "",
            "the telnyx vendor needs TELNYX_FROM or TELNYX_MESSAGING_PROFILE_ID",
        );
    }
    let base = r.text(ENV_TELNYX_BASE_URL);
    let base_url = match parse_url(base.trim()) {
        Ok(u) => Some(u),
        Err(e) => {
            r.problem(ENV_TELNYX_BASE_URL, &base, e);
            None
        }
    };
    let public_key = set(r, ENV_TELNYX_PUBLIC_KEY).and_then(|v| match telnyx_key(&v) {
        Ok(k) => Some(k),
        Err(e) => {
            r.problem(ENV_TELNYX_PUBLIC_KEY, &v, e);
            None
        }
    });
    Some(TelnyxConfig {
        api_key: SecretString::from(api_key?),
        from,
        messaging_profile_id,
        base_url: base_url?,
        public_key,
    })
}

/// An Ed25519 public key in base64 (Telnyx shows it so).
fn telnyx_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "expected the base64 public key from the Telnyx portal".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "expected 32 bytes (an Ed25519 public key) in base64".to_owned())?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| "is not an Ed25519 public key".to_owned())?;
    Ok(key)
}

/// The `vonage` vendor's settings (Vonage SMS API).
#[derive(Clone)]
pub struct VonageConfig {
    pub api_key: String,
    pub api_secret: SecretString,
    pub from: String,
    pub base_url: String,
    /// `VONAGE_SIGNATURE_SECRET`: verifies the receipts (none: neither asked for nor taken).
    pub signature_secret: Option<SecretString>,
}

impl fmt::Debug for VonageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageConfig")
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .field(
                "signature_secret",
                &self.signature_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Reads `VONAGE_*`: key, secret and sender are all required.
pub(super) fn read_vonage(r: &mut Reader<'_>) -> Option<VonageConfig> {
    let api_key = set(r, ENV_VONAGE_API_KEY);
    let api_secret = set(r, ENV_VONAGE_API_SECRET);
    if api_key.is_none() || api_secret.is_none() {
        r.problem(
            ENV_VONAGE_API_KEY,
            "",
            "the vonage vendor needs VONAGE_API_KEY and VONAGE_API_SECRET",
        );
    }
    let from = set(r, ENV_VONAGE_FROM);
    match &from {
        None => r.problem(ENV_VONAGE_FROM, "", "the vonage vendor needs VONAGE_FROM"),
        Some(v) => {
            if let Err(e) = sender_id(v) {
                r.problem(ENV_VONAGE_FROM, v, e);
            }
        }
    }
    let base = r.text(ENV_VONAGE_BASE_URL);
    let base_url = match parse_url(base.trim()) {
        Ok(u) => Some(u),
        Err(e) => {
            r.problem(ENV_VONAGE_BASE_URL, &base, e);
            None
        }
    };
    let signature_secret = set(r, ENV_VONAGE_SIGNATURE_SECRET);
    if let Some(v) = &signature_secret
        && v.len() < 16
    {
        r.problem(
            ENV_VONAGE_SIGNATURE_SECRET,
            v,
            "expected the signature secret from the Vonage dashboard (16 characters or more)",
        );
    }
    Some(VonageConfig {
        api_key: api_key?,
        api_secret: SecretString::from(api_secret?),
        from: from?,
        base_url: base_url?,
        signature_secret: signature_secret.map(SecretString::from),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;
    use crate::config::*;

    #[test]
    fn telnyx_needs_its_key_and_an_origin_and_hides_the_key() {
        let err = config(&[(ENV_SMS_SENDER, "telnyx")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("TELNYX_API_KEY") && text.contains("TELNYX_FROM"),
            "{text}"
        );
        let c = config(&[
            (ENV_SMS_ROUTES, "US=telnyx,console"),
            (ENV_TELNYX_API_KEY, "KEY0123456789SECRETPART"),
            (ENV_TELNYX_FROM, "+18445550001"),
        ])
        .unwrap();
        let t = c.delivery.telnyx.unwrap();
        assert_eq!(t.base_url, "https://api.telnyx.com");
        assert!(!format!("{t:?}").contains("SECRETPART"));
    }

    #[test]
    fn vonage_needs_key_secret_and_sender_and_hides_the_secret() {
        let err = config(&[(ENV_SMS_ROUTES, "*=vonage")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("VONAGE_API_SECRET") && text.contains("VONAGE_FROM"),
            "{text}"
        );
        let c = config(&[
            (ENV_SMS_SENDER, "vonage"),
            (ENV_VONAGE_API_KEY, "abcd1234"),
            (ENV_VONAGE_API_SECRET, "SECRETPART0123"),
            (ENV_VONAGE_FROM, "Acme"),
        ])
        .unwrap();
        let v = c.delivery.vonage.unwrap();
        assert_eq!(v.from, "Acme");
        assert!(!format!("{v:?}").contains("SECRETPART"));
    }

    #[test]
    fn receipt_keys_are_checked_and_hidden() {
        let base = [
            (ENV_SMS_SENDER, "telnyx"),
            (ENV_TELNYX_API_KEY, "KEY0123456789SECRETPART"),
            (ENV_TELNYX_FROM, "+18445550001"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = base.to_vec();
            v.push(extra);
            config(&v)
        };
        let err = with((ENV_TELNYX_PUBLIC_KEY, "not base64!")).unwrap_err();
        assert!(err.to_string().contains("TELNYX_PUBLIC_KEY"), "{err}");
        let err = with((ENV_TELNYX_PUBLIC_KEY, "c2hvcnQ=")).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text: &'static str = Box::leak(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.as_bytes())
                .into_boxed_str(),
        );
        let c = with((ENV_TELNYX_PUBLIC_KEY, text)).unwrap();
        assert_eq!(c.delivery.telnyx.unwrap().public_key, Some(key.to_bytes()));
        let err = config(&[
            (ENV_SMS_SENDER, "vonage"),
            (ENV_VONAGE_API_KEY, "abcd1234"),
            (ENV_VONAGE_API_SECRET, "SECRETPART0123"),
            (ENV_VONAGE_FROM, "Acme"),
            (ENV_VONAGE_SIGNATURE_SECRET, "shortSECRET"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("VONAGE_SIGNATURE_SECRET") && !err.contains("shortSECRET"),
            "{err}"
        );
    }
}
