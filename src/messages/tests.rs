use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

fn request(code: &str) -> Request<'_> {
    Request {
        code,
        channel: Channel::Sms,
        locale: None,
        scope: None,
        service_name: None,
        do_not_share: false,
        app_hash: None,
        ttl: Duration::from_secs(600),
    }
}

fn locale(tag: &str) -> Locale {
    Locale::parse(tag).unwrap()
}

/// The segment promise: every built-in code sentence, with a 6-digit code, with and without a
/// short service name, is one SMS in its script's encoding; with the do-not-share sentence it
/// stays within two. The table is every built-in locale.
#[test]
fn every_built_in_template_renders_within_its_segment_promise() {
    let m = Messages::default();
    for l in Locale::all() {
        let w = l.wording();
        for (name, service, dont_share, most) in [
            ("plain", None, false, 1),
            ("with a service name", Some("Acme Bank"), false, 1),
            ("with do-not-share", Some("Acme Bank"), true, 2),
        ] {
            let r = Request {
                locale: Some(l),
                service_name: service,
                do_not_share: dont_share,
                ..request("123456")
            };
            let rendered = m.render(&r);
            let text = rendered.text.expose_secret();
            assert_eq!(rendered.locale, l);
            assert_eq!(
                text.matches("123456").count(),
                1,
                "{l} {name}: the code once: {text}"
            );
            assert!(
                !text.contains('{'),
                "{l} {name}: a placeholder left: {text}"
            );
            if let Some(s) = service {
                assert!(text.contains(s), "{l} {name}: no service name: {text}");
            }
            assert!(
                rendered.segments.count <= most,
                "{l} {name}: {} segments ({}, {} units): {text}",
                rendered.segments.count,
                rendered.segments.encoding,
                rendered.segments.units
            );
            // Every piece is written in the language, not left in English.
            if l.language() != "en" {
                for piece in [w.code, w.service, w.dont_share, w.expires] {
                    assert!(
                        !piece.contains("verification code") && !piece.contains("expires in"),
                        "{l}: English left in {piece:?}"
                    );
                }
            }
            assert!(w.expires.contains("{ttl}"), "{l}: expiry without {{ttl}}");
            assert!(w.service.contains("{service}"), "{l}: no {{service}}");
        }
    }
}

/// The languages written in Latin letters that GSM-7 carries stay GSM-7 (a message in GSM-7
/// holds 160 characters instead of 70); every other script is UCS-2.
#[test]
fn latin_wordings_within_the_gsm_alphabet_are_gsm7() {
    let m = Messages::default();
    let gsm7 = [
        "af", "da", "de", "en", "en-GB", "et", "fi", "fr", "fr-CA", "id", "it", "ms", "nb", "nl",
        "ro", "sv", "tl",
    ];
    for l in Locale::all() {
        let r = Request {
            locale: Some(l),
            ..request("123456")
        };
        let expected = if gsm7.contains(&l.tag()) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        };
        assert_eq!(m.render(&r).segments.encoding, expected, "{l}");
    }
}

/// A few locales as they read, with their encodings and segments.
#[test]
fn snapshot_of_en_es_de_ar_zh_hi_ru() {
    let m = Messages::default();
    let cases = [
        (
            "en",
            "Your verification code is: 123456",
            Encoding::Gsm7,
            33,
        ),
        (
            "es",
            "Tu código de verificación es: 123456",
            Encoding::Ucs2,
            36,
        ),
        (
            "de",
            "Ihr Bestätigungscode lautet: 123456",
            Encoding::Gsm7,
            35,
        ),
        ("ar", "رمز التحقق الخاص بك هو: 123456", Encoding::Ucs2, 30),
        ("zh", "您的验证码是：123456", Encoding::Ucs2, 13),
        ("hi", "आपका सत्यापन कोड है: 123456", Encoding::Ucs2, 27),
        ("ru", "Ваш код подтверждения: 123456", Encoding::Ucs2, 29),
    ];
    for (tag, text, encoding, units) in cases {
        let r = Request {
            locale: Some(locale(tag)),
            ..request("123456")
        };
        let rendered = m.render(&r);
        assert_eq!(rendered.text.expose_secret(), text, "{tag}");
        assert_eq!(
            rendered.segments,
            Segments {
                encoding,
                units,
                count: 1
            },
            "{tag}"
        );
    }
    let r = Request {
        locale: Some(locale("de")),
        service_name: Some("Acme"),
        do_not_share: true,
        ..request("123456")
    };
    assert_eq!(
        m.render(&r).text.expose_secret(),
        "Ihr Acme-Bestätigungscode lautet: 123456. Geben Sie diesen Code an niemanden weiter; \
         wir werden Sie nie danach fragen."
    );
}

#[test]
fn english_keeps_the_wording_of_earlier_releases() {
    let m = Messages::default();
    assert_eq!(
        m.render(&request("123456")).text.expose_secret(),
        "Your verification code is: 123456"
    );
    let r = Request {
        service_name: Some("Acme"),
        do_not_share: true,
        ..request("123456")
    };
    assert_eq!(
        m.render(&r).text.expose_secret(),
        "Your Acme verification code is: 123456. Don't share this code with anyone: we will never \
         ask you for it."
    );
}

#[test]
fn the_default_locale_applies_when_the_request_names_none() {
    let m = Messages {
        default_locale: locale("fr"),
        ..Messages::default()
    };
    assert_eq!(
        m.render(&request("4321")).text.expose_secret(),
        "Votre code de vérification est : 4321"
    );
    let r = Request {
        locale: Some(locale("it")),
        ..request("4321")
    };
    assert_eq!(
        m.render(&r).text.expose_secret(),
        "Il tuo codice di verifica è: 4321"
    );
}

#[test]
fn autofill_lines_follow_the_sentence_on_sms_only() {
    let m = Messages {
        webotp: Some(WebOtpDomain::parse("login.example.com").unwrap()),
        ..Messages::default()
    };
    let hash = AppHash::parse("FA+9qCX9VSu").unwrap();
    let r = Request {
        app_hash: Some(&hash),
        ..request("123456")
    };
    let rendered = m.render(&r);
    assert_eq!(
        rendered.text.expose_secret(),
        "Your verification code is: 123456\n\nFA+9qCX9VSu\n\n@login.example.com #123456"
    );
    assert_eq!(rendered.segments.encoding, Encoding::Gsm7);
    assert_eq!(rendered.segments.count, 1);
    let whatsapp = Request {
        channel: Channel::Whatsapp,
        ..r
    };
    assert_eq!(
        m.render(&whatsapp).text.expose_secret(),
        "Your verification code is: 123456"
    );
}

#[test]
fn overrides_replace_the_sentence_with_every_placeholder() {
    let service = "VA0123456789abcdef0123456789abcdef";
    let m = Messages {
        overrides: Overrides::parse(&format!(
            "[default]\nen = \"{{code}} is your {{service}} code ({{ttl}} min)\"\n\
             [{service}]\nes = \"{{service}}: {{code}}\""
        ))
        .unwrap(),
        default_service_name: "Linker".to_owned(),
        ..Messages::default()
    };
    let cases = [
        (None, None, None, "123456 is your Linker code (10 min)"),
        (
            None,
            Some("Acme"),
            None,
            "123456 is your Acme code (10 min)",
        ),
        (Some(service), Some("Acme"), Some("es"), "Acme: 123456"),
        // No Spanish override for the default service: the built-in sentence.
        (
            None,
            Some("Acme"),
            Some("es"),
            "Tu código de verificación de Acme es: 123456",
        ),
    ];
    for (scope, name, tag, expected) in cases {
        let r = Request {
            scope,
            service_name: name,
            locale: tag.map(locale),
            ..request("123456")
        };
        assert_eq!(
            m.render(&r).text.expose_secret(),
            expected,
            "{scope:?} {tag:?}"
        );
    }
    // A 90 s code reads as 2 minutes; a service name holding a placeholder stays as it is.
    let r = Request {
        ttl: Duration::from_secs(90),
        service_name: Some("{code}"),
        ..request("123456")
    };
    assert_eq!(
        m.render(&r).text.expose_secret(),
        "123456 is your {code} code (2 min)"
    );
}

#[test]
fn the_book_lists_every_built_in_locale() {
    const START: &str = "<!-- locales:start -->\n";
    const END: &str = "<!-- locales:end -->";
    let page = include_str!("../../docs/messages.md");
    let start = page.find(START).expect("locales:start in docs/messages.md") + START.len();
    let end = page.find(END).expect("locales:end in docs/messages.md");
    let expected = locales_table();
    assert!(
        page[start..end] == expected,
        "the table of docs/messages.md is not the one generated from src/messages/wording.rs; \
         replace what lies between the locales:start and locales:end comments with:\n{expected}"
    );
}

#[test]
fn a_call_reads_the_code_digit_by_digit_in_the_language() {
    let m = Messages {
        webotp: Some(WebOtpDomain::parse("example.com").unwrap()),
        ..Messages::default()
    };
    let hash = AppHash::parse("FA+9qCX9VSu").unwrap();
    let r = Request {
        channel: Channel::Call,
        locale: Some(locale("es")),
        app_hash: Some(&hash),
        ..request("123456")
    };
    let rendered = m.render(&r);
    assert_eq!(
        rendered.text.expose_secret(),
        "Tu código de verificación es: 1, 2, 3, 4, 5, 6"
    );
    assert_eq!(rendered.locale.wording().voice, "es-ES");
}
