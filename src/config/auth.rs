//! How callers authenticate: the mode (API keys, the app's user tokens, or both), the API keys
//! and the JWT settings (required and checked only when user tokens are accepted).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::parse::{list, parse_duration, parse_url, redact_url};
use super::settings::{
    ENV_API_KEYS, ENV_AUTH, ENV_JWT_ALGORITHMS, ENV_JWT_AUDIENCE, ENV_JWT_ISSUER,
    ENV_JWT_JWKS_REFRESH, ENV_JWT_JWKS_URL, ENV_JWT_LEEWAY,
};
use super::source::Reader;

/// How callers authenticate.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Empty: one key is generated on first start and stored hashed.
    pub api_keys: Vec<SecretString>,
    /// Set when `mode` accepts user tokens.
    pub jwt: Option<JwtConfig>,
}

/// The auth settings as read, each `None` when its problem was recorded.
pub(super) struct AuthDraft {
    pub mode: Option<AuthMode>,
    pub api_keys: Vec<SecretString>,
    pub jwt: Option<JwtConfig>,
}

impl AuthDraft {
    pub(super) fn finish(self) -> Option<AuthSettings> {
        Some(AuthSettings {
            mode: self.mode?,
            api_keys: self.api_keys,
            jwt: self.jwt,
        })
    }
}

/// Reads the auth settings.
pub(super) fn read(r: &mut Reader<'_>) -> AuthDraft {
    let api_keys = {
        let (value, _) = r.raw(ENV_API_KEYS);
        let keys: Vec<String> = value
            .as_deref()
            .map(list)
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        if keys.iter().any(|k| k.len() < 16) {
            r.problem(
                ENV_API_KEYS,
                "",
                "every key must be at least 16 characters long",
            );
        }
        keys.into_iter().map(SecretString::from).collect::<Vec<_>>()
    };
    let mode = r.parse(ENV_AUTH, |t| match t {
        "api-key" => Ok(AuthMode::ApiKey),
        "jwt" => Ok(AuthMode::Jwt),
        "both" => Ok(AuthMode::Both),
        _ => Err("expected `api-key`, `jwt` or `both`".to_owned()),
    });
    let jwt = jwt(r, mode);
    AuthDraft {
        mode,
        api_keys,
        jwt,
    }
}

/// How callers authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    ApiKey,
    Jwt,
    Both,
}

impl AuthMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMode::ApiKey => "api-key",
            AuthMode::Jwt => "jwt",
            AuthMode::Both => "both",
        }
    }

    /// Whether user tokens are accepted.
    pub const fn jwt(self) -> bool {
        matches!(self, AuthMode::Jwt | AuthMode::Both)
    }

    /// Whether API keys are accepted.
    pub const fn api_keys(self) -> bool {
        matches!(self, AuthMode::ApiKey | AuthMode::Both)
    }
}

/// Where user tokens come from and what they must say.
#[derive(Clone)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub leeway: Duration,
    pub refresh: Duration,
}

/// The JWKS URL through [`redact_url`] (it may carry a token).
impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("jwks_url", &redact_url(&self.jwks_url))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("refresh", &self.refresh)
            .finish()
    }
}

/// The JWT settings: required (and checked) when `auth` accepts user tokens.
fn jwt(r: &mut Reader<'_>, auth: Option<AuthMode>) -> Option<JwtConfig> {
    let url = r.raw(ENV_JWT_JWKS_URL).0.filter(|v| !v.trim().is_empty());
    let issuer = r.raw(ENV_JWT_ISSUER).0.filter(|v| !v.trim().is_empty());
    let audience = r.raw(ENV_JWT_AUDIENCE).0.filter(|v| !v.trim().is_empty());
    let algorithms = r.parse(ENV_JWT_ALGORITHMS, |t| {
        use jsonwebtoken::Algorithm as A;
        let list = list(t)
            .map(|name| match name {
                "RS256" => Ok(A::RS256),
                "RS384" => Ok(A::RS384),
                "RS512" => Ok(A::RS512),
                "PS256" => Ok(A::PS256),
                "PS384" => Ok(A::PS384),
                "PS512" => Ok(A::PS512),
                "ES256" => Ok(A::ES256),
                "ES384" => Ok(A::ES384),
                "EdDSA" => Ok(A::EdDSA),
                "none" | "HS256" | "HS384" | "HS512" => Err(format!(
                    "`{name}` is never accepted: only asymmetric algorithms are verified against a JWKS"
                )),
                other => Err(format!("`{other}` is not a JWS algorithm")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err("list at least one algorithm".to_owned());
        }
        Ok(list)
    });
    let leeway = r.parse(ENV_JWT_LEEWAY, |t| {
        let d = parse_duration(t)?;
        if d > Duration::from_secs(300) {
            return Err("at most 300 seconds".to_owned());
        }
        Ok(d)
    });
    let refresh = r.parse(ENV_JWT_JWKS_REFRESH, |t| {
        let d = parse_duration(t)?;
        if d < Duration::from_secs(60) {
            return Err("at least 60 seconds".to_owned());
        }
        Ok(d)
    });
    if !auth.is_some_and(AuthMode::jwt) {
        return None;
    }
    let mut need = |name: &'static str, v: &Option<String>| {
        if v.is_none() {
            r.problem(name, "", "required when VERIFYD_AUTH is jwt or both");
        }
    };
    need(ENV_JWT_JWKS_URL, &url);
    need(ENV_JWT_ISSUER, &issuer);
    need(ENV_JWT_AUDIENCE, &audience);
    let url = match url.as_deref().map(|u| parse_url(u.trim())) {
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            let raw = url.unwrap_or_default();
            r.problem(ENV_JWT_JWKS_URL, &raw, e);
            return None;
        }
        None => None,
    };
    Some(JwtConfig {
        jwks_url: url?,
        issuer: issuer?,
        audience: audience?,
        algorithms: algorithms?,
        leeway: leeway?,
        refresh: refresh?,
    })
}
