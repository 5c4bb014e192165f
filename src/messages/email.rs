//! The email channel's message: a subject line per built-in locale (our own wording, without the
//! code, so that it stays out of notification previews and mail logs), a plain-text body (the
//! code sentence, then the expiry sentence) and the same in HTML, every value escaped. No images,
//! links, remote content or tracking of any kind. An operator's override of the code sentence
//! (`VERIFYD_TEMPLATES`) applies to email like to every other channel.

use secrecy::SecretString;

use super::{Locale, escape_markup};

/// A rendered email: subject, text and HTML (both bodies hold the code: secrets).
pub struct EmailParts {
    pub subject: String,
    pub text: SecretString,
    pub html: SecretString,
}

impl std::fmt::Debug for EmailParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailParts")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The subject line of every built-in locale, by tag (a test holds it to the locale list).
pub static SUBJECTS: &[(&str, &str)] = &[
    ("af", "Jou verifikasiekode"),
    ("ar", "رمز التحقق الخاص بك"),
    ("bg", "Вашият код за потвърждение"),
    ("bn", "আপনার যাচাইকরণ কোড"),
    ("ca", "El teu codi de verificació"),
    ("cs", "Váš ověřovací kód"),
    ("da", "Din bekræftelseskode"),
    ("de", "Ihr Bestätigungscode"),
    ("el", "Ο κωδικός επαλήθευσής σας"),
    ("en", "Your verification code"),
    ("en-GB", "Your verification code"),
    ("es", "Tu código de verificación"),
    ("es-419", "Tu código de verificación"),
    ("et", "Sinu kinnituskood"),
    ("fi", "Vahvistuskoodisi"),
    ("fr", "Votre code de vérification"),
    ("fr-CA", "Votre code de vérification"),
    ("gu", "તમારો ચકાસણી કોડ"),
    ("he", "קוד האימות שלך"),
    ("hi", "आपका सत्यापन कोड"),
    ("hr", "Vaš kod za potvrdu"),
    ("hu", "Az ellenőrző kódja"),
    ("id", "Kode verifikasi Anda"),
    ("it", "Il tuo codice di verifica"),
    ("ja", "認証コードのお知らせ"),
    ("kn", "ನಿಮ್ಮ ಪರಿಶೀಲನಾ ಕೋಡ್"),
    ("ko", "인증 코드 안내"),
    ("lt", "Jūsų patvirtinimo kodas"),
    ("ml", "നിങ്ങളുടെ സ്ഥിരീകരണ കോഡ്"),
    ("mr", "तुमचा पडताळणी कोड"),
    ("ms", "Kod pengesahan anda"),
    ("nb", "Bekreftelseskoden din"),
    ("nl", "Je verificatiecode"),
    ("pa", "ਤੁਹਾਡਾ ਪੁਸ਼ਟੀਕਰਨ ਕੋਡ"),
    ("pl", "Twój kod weryfikacyjny"),
    ("pt", "O seu código de verificação"),
    ("pt-BR", "Seu código de verificação"),
    ("ro", "Codul de verificare"),
    ("ru", "Ваш код подтверждения"),
    ("sk", "Váš overovací kód"),
    ("sv", "Din verifieringskod"),
    ("ta", "உங்கள் சரிபார்ப்புக் குறியீடு"),
    ("te", "మీ ధృవీకరణ కోడ్"),
    ("th", "รหัสยืนยันของคุณ"),
    ("tl", "Ang iyong code sa pag-verify"),
    ("tr", "Doğrulama kodunuz"),
    ("uk", "Ваш код підтвердження"),
    ("vi", "Mã xác minh của bạn"),
    ("zh", "您的验证码"),
    ("zh-HK", "您的驗證碼"),
];

/// The subject of `locale` (its language's when the tag has none; English as a last resort,
/// which the table test rules out for built-in locales).
pub fn subject(locale: Locale) -> &'static str {
    let tag = locale.tag();
    let language = tag.split('-').next().unwrap_or(tag);
    SUBJECTS
        .iter()
        .find(|(t, _)| *t == tag)
        .or_else(|| SUBJECTS.iter().find(|(t, _)| *t == language))
        .map_or("Your verification code", |(_, s)| *s)
}

/// Languages written right to left among the built-in ones.
fn right_to_left(locale: Locale) -> bool {
    matches!(locale.tag().split('-').next(), Some("ar" | "he"))
}

/// The email of `sentence` (the code sentence as rendered for every channel), `code` and
/// `expires` (the expiry sentence, its minutes filled in) in `locale`; `service` (when the
/// request names one) leads the subject.
pub fn render(
    locale: Locale,
    service: Option<&str>,
    sentence: &str,
    code: &str,
    expires: &str,
) -> EmailParts {
    let base = subject(locale);
    let subject = match service {
        Some(name) => format!("{name}: {base}"),
        None => base.to_owned(),
    };
    let text = format!("{sentence}\n\n{expires}\n");
    let dir = if right_to_left(locale) { "rtl" } else { "ltr" };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\" dir=\"{dir}\">\n<head><meta charset=\"utf-8\">\
         <title>{title}</title></head>\n<body>\n<p>{sentence}</p>\n\
         <p style=\"font-size:28px;font-weight:bold;letter-spacing:4px;font-family:monospace\">{code}</p>\n\
         <p>{expires}</p>\n</body>\n</html>\n",
        lang = escape_markup(locale.tag()),
        title = escape_markup(&subject),
        sentence = escape_markup(sentence),
        code = escape_markup(code),
        expires = escape_markup(expires),
    );
    EmailParts {
        subject,
        text: SecretString::from(text),
        html: SecretString::from(html),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn every_built_in_locale_has_its_own_subject() {
        for l in Locale::all() {
            assert!(
                SUBJECTS.iter().any(|(t, _)| *t == l.tag()),
                "no subject for {}",
                l.tag()
            );
        }
        assert_eq!(
            SUBJECTS.len(),
            Locale::all().count(),
            "a subject for no locale"
        );
    }

    #[test]
    fn html_escapes_every_value_and_has_no_remote_content() {
        let l = Locale::parse("he").unwrap();
        let e = render(
            l,
            Some("<b>Acme</b>"),
            "Code & <script>",
            "123456",
            "\"soon\"",
        );
        assert_eq!(e.subject, "<b>Acme</b>: קוד האימות שלך");
        let html = e.html.expose_secret();
        assert!(html.contains("dir=\"rtl\""));
        assert!(html.contains("&lt;b&gt;Acme&lt;/b&gt;"));
        assert!(html.contains("<p>Code &amp; &lt;script&gt;</p>"));
        assert!(html.contains("&quot;soon&quot;"));
        assert!(html.contains(">123456</p>"));
        for remote in ["<img", "<a ", "http:", "https:", "<script", "src="] {
            assert!(!html.contains(remote), "{remote}");
        }
        assert_eq!(
            e.text.expose_secret(),
            "Code & <script>\n\n\"soon\"\n",
            "the text body is not escaped"
        );
    }
}
