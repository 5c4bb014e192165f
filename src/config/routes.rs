//! `VERIFYD_SMS_ROUTES`: which SMS vendors carry a country's messages, in failover order.
//! `US,CA=twilio-messaging,webhook;GB=webhook;*=twilio-messaging`: entries split by `;`, each
//! `countries=vendors` with comma-separated ISO 3166-1 alpha-2 codes (or `*` for every other
//! country) and comma-separated vendor names.

use crate::domain::Region;

use super::delivery::SenderKind;

/// The parsed routes. Every country appears at most once; `fallback` is the `*` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmsRoutes {
    /// The countries with their own vendor list, in the order written.
    pub countries: Vec<(Region, Vec<SenderKind>)>,
    /// The `*` entry: every country not listed.
    pub fallback: Option<Vec<SenderKind>>,
}

impl SmsRoutes {
    /// Every vendor any route names (each once, in first-seen order).
    pub fn vendors(&self) -> Vec<SenderKind> {
        let mut all = Vec::new();
        let lists = self
            .countries
            .iter()
            .map(|(_, v)| v)
            .chain(self.fallback.iter());
        for kind in lists.flatten() {
            if !all.contains(kind) {
                all.push(*kind);
            }
        }
        all
    }

    /// Whether no route is set.
    pub fn is_empty(&self) -> bool {
        self.countries.is_empty() && self.fallback.is_none()
    }
}

/// A vendor name as routes and `VERIFYD_SMS_SENDER` spell it.
pub(super) fn vendor(name: &str) -> Result<SenderKind, String> {
    match name {
        "console" => Ok(SenderKind::Console),
        "twilio-messaging" => Ok(SenderKind::TwilioMessaging),
        "webhook" => Ok(SenderKind::Webhook),
        "null" => Ok(SenderKind::Null),
        "telnyx" => Ok(SenderKind::Telnyx),
        "vonage" => Ok(SenderKind::Vonage),
        "plivo" => Ok(SenderKind::Plivo),
        "sinch" => Ok(SenderKind::Sinch),
        "infobip" => Ok(SenderKind::Infobip),
        "bird" => Ok(SenderKind::Bird),
        other => Err(format!(
            "unknown vendor `{other}`: expected `console`, `twilio-messaging`, `webhook`, `telnyx`, `vonage`, `plivo`, `sinch`, `infobip`, `bird` or `null`"
        )),
    }
}

/// Parses `VERIFYD_SMS_ROUTES` (empty: no routes).
///
/// # Errors
/// The reason, naming the entry, when an entry is not `countries=vendors`, a country is not a
/// known region or appears twice, a vendor is unknown or repeated in a list.
pub fn parse_routes(text: &str) -> Result<SmsRoutes, String> {
    let mut routes = SmsRoutes::default();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (countries, vendors) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not `countries=vendors`"))?;
        let mut list = Vec::new();
        for name in vendors.split(',').map(str::trim) {
            let kind = vendor(name)?;
            if list.contains(&kind) {
                return Err(format!("`{entry}` names `{name}` twice"));
            }
            list.push(kind);
        }
        for country in countries.split(',').map(str::trim) {
            if country == "*" {
                if routes.fallback.is_some() {
                    return Err("`*` appears twice".to_owned());
                }
                routes.fallback = Some(list.clone());
                continue;
            }
            let region: Region = country
                .parse()
                .map_err(|e| format!("`{country}` in `{entry}`: {e}"))?;
            if routes.countries.iter().any(|(r, _)| *r == region) {
                return Err(format!("`{country}` appears twice"));
            }
            routes.countries.push((region, list.clone()));
        }
    }
    Ok(routes)
}

/// Production refuses a route through `console` or `null` (local engine only).
pub(super) fn production_rule(
    r: &mut super::source::Reader<'_>,
    provider: Option<super::delivery::ProviderKind>,
    routes: Option<&SmsRoutes>,
) {
    let Some(routes) = routes else { return };
    if provider != Some(super::delivery::ProviderKind::Local) {
        return;
    }
    for kind in routes.vendors() {
        if matches!(kind, SenderKind::Console | SenderKind::Null) {
            r.problem(
                super::settings::ENV_SMS_ROUTES,
                kind.as_str(),
                "is refused in production: that vendor delivers nothing",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_per_country_with_a_default() {
        let r = parse_routes(" US,CA=twilio-messaging,webhook; GB=webhook ;*=twilio-messaging")
            .unwrap();
        assert_eq!(r.countries.len(), 3);
        assert_eq!(r.countries[1].0.as_str(), "CA");
        assert_eq!(
            r.countries[1].1,
            vec![SenderKind::TwilioMessaging, SenderKind::Webhook]
        );
        assert_eq!(r.fallback, Some(vec![SenderKind::TwilioMessaging]));
        assert_eq!(
            r.vendors(),
            vec![SenderKind::TwilioMessaging, SenderKind::Webhook]
        );
        assert!(parse_routes("").unwrap().is_empty());
    }

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        for (text, says) in [
            ("US", "countries=vendors"),
            ("US=sinchh", "unknown vendor `sinchh`"),
            ("US=webhook,webhook", "twice"),
            ("US=webhook;US=console", "`US` appears twice"),
            ("*=webhook;*=console", "`*` appears twice"),
            ("XX=webhook", "`XX`"),
            ("US=", "unknown vendor ``"),
        ] {
            let err = parse_routes(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_routed_vendor_needs_its_settings_and_production_refuses_the_console() {
        use crate::config::tests::config;
        use crate::config::*;
        let err = config(&[(ENV_SMS_ROUTES, "US=console,twilio-messaging")]).unwrap_err();
        assert!(err.to_string().contains("TWILIO_AUTH_TOKEN"), "{err}");
        let c = config(&[
            (ENV_SMS_ROUTES, "US=twilio-messaging,console;*=console"),
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_FROM, "+15005550006"),
        ])
        .unwrap();
        assert!(c.delivery.twilio_messaging.is_some());
        assert_eq!(c.delivery.routes.vendors().len(), 2);
        let err =
            config(&[(ENV_ENV, "production"), (ENV_SMS_ROUTES, "*=webhook,null")]).unwrap_err();
        assert!(err.to_string().contains("VERIFYD_SMS_ROUTES"), "{err}");
    }
}
