//! What messages say: the locale of a request that names none, the operator's templates (a TOML
//! file, read and checked here at startup: one bad entry stops the process with every problem
//! named) and the WebOTP domain.

use super::settings::{ENV_DEFAULT_LOCALE, ENV_TEMPLATES, ENV_WEBOTP_DOMAIN};
use super::source::Reader;
use crate::messages::{Locale, Overrides, WebOtpDomain};

component! {
    /// The message settings.
    #[derive(Clone, Debug)]
    pub struct MessageSettings / MessageDraft {
        pub default_locale: Locale,
        /// From `VERIFYD_TEMPLATES`; empty when unset.
        pub overrides: Overrides,
        pub webotp_domain: Option<WebOtpDomain>,
    }
}

/// Reads the message settings.
pub(super) fn read(r: &mut Reader<'_>) -> MessageDraft {
    MessageDraft {
        default_locale: r.parse(ENV_DEFAULT_LOCALE, |t| {
            Locale::parse(t)
                .map_err(|e| format!("{e}; the built-in locales are listed in docs/messages.md"))
        }),
        overrides: r.parse(ENV_TEMPLATES, |t| {
            if t.is_empty() {
                return Ok(Overrides::default());
            }
            let text = std::fs::read_to_string(t)
                .map_err(|e| format!("cannot read the templates file: {e}"))?;
            Overrides::parse(&text).map_err(|problems| problems.join("; "))
        }),
        webotp_domain: r.parse(ENV_WEBOTP_DOMAIN, |t| {
            if t.is_empty() {
                return Ok(None);
            }
            WebOtpDomain::parse(t).map(Some).map_err(|e| e.to_string())
        }),
    }
}
