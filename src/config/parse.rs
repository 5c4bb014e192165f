//! The value parsers the components share (lists, durations, URLs, booleans, Twilio SIDs and
//! sender IDs) and [`redact_url`], which every URL goes through before it is shown.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

/// Query (and fragment) parameters whose value is a secret: a parameter is redacted when its
/// lowercased name contains one of these (`token`, `access_token`, `api_key`, `apikey`, `key`,
/// `secret`, `client_secret`, `password`, `sslpassword`, `pwd`, `sig`, `signature`, `auth`,
/// `credential`, …). Over-redacting a harmless `sslkey` path is the price of never missing one.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "key",
    "secret",
    "pass",
    "pwd",
    "sig",
    "auth",
    "credential",
];

/// A URL as it may be shown (`verifyd config`, problems, `Debug`, logs): the password of its
/// userinfo becomes `<redacted>` (`postgres://u:<redacted>@h/db`), and so does a bare user
/// name in an http(s) URL (`https://<redacted>@host/…`: there it is usually a token; a database
/// or Redis user name is kept); every query or fragment parameter whose name looks secret (see
/// [`SECRET_PARAMS`]) keeps its name and loses its value (`?token=<redacted>&region=us`).
/// Text that is not `scheme://…` is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..rest_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str("<redacted>");
                }
                None if !userinfo.is_empty()
                    && matches!(
                        url[..scheme_end].to_ascii_lowercase().as_str(),
                        "http" | "https"
                    ) =>
                {
                    out.push_str("<redacted>");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    match before_fragment.find('?') {
        Some(q) => {
            out.push_str(&before_fragment[..=q]);
            out.push_str(&redact_params(&before_fragment[q + 1..]));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&redact_params(fragment));
    }
    out
}

/// `a=1&token=x` → `a=1&token=<redacted>` (see [`SECRET_PARAMS`]).
fn redact_params(params: &str) -> String {
    params
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && secret_param(name) => {
                format!("{name}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

pub(super) fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

pub(super) fn parse_list<T: FromStr + Ord>(text: &str, what: &str) -> Result<BTreeSet<T>, String> {
    list(text)
        .map(|item| {
            item.parse::<T>()
                .map_err(|_| format!("`{item}` is not {what}"))
        })
        .collect()
}

/// Seconds as a plain integer, or with a unit suffix: `90`, `90s`, `10m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected whole seconds, or a number with s, m, h or d".to_owned())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err("expected whole seconds, or a number with s, m, h or d".to_owned()),
    };
    Ok(Duration::from_secs(secs))
}

pub(super) fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// An absolute `http(s)://` URL of one endpoint (the JWKS, the SMS webhook): a query is allowed
/// (gateways and issuers may take a token there; it is redacted in output), a fragment is not.
/// Returned without a trailing slash when it has no query.
pub(super) fn parse_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".to_owned());
    }
    if url.query().is_some() {
        Ok(text.to_owned())
    } else {
        Ok(text.trim_end_matches('/').to_owned())
    }
}

/// `Some(loopback)` when `url` is plain `http://` (`loopback`: its host is `localhost` or a
/// loopback address); `None` for https:// (or anything unparsable, refused elsewhere).
pub(super) fn plain_http(url: &str) -> Option<bool> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
    )
}

/// An absolute `http(s)://` URL without query or fragment; returned without a trailing slash.
pub(super) fn parse_base_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

pub(super) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Twilio's `From`: an E.164 number, a short code (digits) or an alphanumeric sender ID.
pub(super) fn sender_id(text: &str) -> Result<(), String> {
    let ok = if let Some(digits) = text.strip_prefix('+') {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    } else {
        (3..=11).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
    };
    if ok {
        Ok(())
    } else {
        Err("expected an E.164 number (+...), a short code or an alphanumeric sender ID (up to 11 characters)".to_owned())
    }
}

pub(super) fn sid(text: &str, prefix: &str) -> Result<String, String> {
    let ok = text
        .strip_prefix(prefix)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("must be `{prefix}` followed by 32 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:p@h:5432/db?x=y"),
            "postgres://u:<redacted>@h:5432/db?x=y"
        );
        assert_eq!(redact_url("redis://:p@h/0"), "redis://:<redacted>@h/0");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn url_userinfo_and_secret_query_parameters_are_redacted() {
        for (url, shown) in [
            (
                "postgres://verifyd@db:5432/verifyd?password=hunter2&sslmode=require",
                "postgres://verifyd@db:5432/verifyd?password=<redacted>&sslmode=require",
            ),
            (
                "https://gw:pw@sms.example.com/hook?token=t1&region=us&api_key=k1",
                "https://gw:<redacted>@sms.example.com/hook?token=<redacted>&region=us&api_key=<redacted>",
            ),
            (
                "https://ghp_abc@sms.example.com/hook",
                "https://<redacted>@sms.example.com/hook",
            ),
            (
                "https://issuer.example.com/jwks?Signature=s&X-Amz-Credential=c&sig=x&key=k&secret=y&access_token=a&auth=b&kid=1",
                "https://issuer.example.com/jwks?Signature=<redacted>&X-Amz-Credential=<redacted>&sig=<redacted>&key=<redacted>&secret=<redacted>&access_token=<redacted>&auth=<redacted>&kid=1",
            ),
            (
                "https://h/p#access_token=a&state=1",
                "https://h/p#access_token=<redacted>&state=1",
            ),
            ("https://h/p?flag&token=", "https://h/p?flag&token="),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn endpoint_urls_may_carry_a_query_but_base_urls_may_not() {
        assert_eq!(
            parse_url("https://h/hook?token=x").unwrap(),
            "https://h/hook?token=x"
        );
        assert_eq!(parse_url("https://h/hook/").unwrap(), "https://h/hook");
        assert!(parse_url("https://h/hook#x").is_err());
        assert!(parse_url("ftp://h/hook").is_err());
        assert!(parse_base_url("https://h/?x=1").is_err());
        assert_eq!(plain_http("https://h/"), None);
        assert_eq!(plain_http("http://127.0.0.2:9/"), Some(true));
        assert_eq!(plain_http("http://[::1]:9/"), Some(true));
        assert_eq!(plain_http("http://localhost/"), Some(true));
        assert_eq!(plain_http("http://10.0.0.1/"), Some(false));
        assert_eq!(plain_http("http://sms.example.com/"), Some(false));
    }
}
