//! Operator wording from the TOML file named by `VERIFYD_TEMPLATES`: one table per service
//! (`[default]` for every service without its own, `[VA…]` for one `/v2` service), each mapping
//! a locale tag to the code sentence with its placeholders:
//!
//! ```toml
//! [default]
//! en = "{code} is your {service} code. It expires in {ttl} minutes."
//! pt-BR = "{code} é o seu código {service}."
//!
//! [VA0123456789abcdef0123456789abcdef]
//! de = "Ihr Acme-Code: {code}"
//! ```
//!
//! A template must hold `{code}` exactly once and no placeholder but `{code}`, `{service}` and
//! `{ttl}`; its tag must be a built-in locale (an override never adds a language). The whole file
//! is checked at startup: one bad entry stops the process with every problem named.

use std::collections::HashMap;

use super::locale::Locale;

/// The longest template accepted, in characters (a long SMS is 10 parts of 153).
const MAX_TEMPLATE: usize = 1530;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 3] = ["code", "service", "ttl"];

/// A template that holds `{code}` once and only known placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("is empty".to_owned());
        }
        if text.chars().count() > MAX_TEMPLATE {
            return Err(format!("is longer than {MAX_TEMPLATE} characters"));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err("holds a control character (only line breaks are allowed)".to_owned());
        }
        let mut codes = 0;
        for piece in text.split('{').skip(1) {
            let name = piece.split_once('}').map(|(name, _)| name);
            match name {
                Some("code") => codes += 1,
                Some(n) if PLACEHOLDERS.contains(&n) => {}
                _ => {
                    return Err(
                        "has a `{` that does not start {code}, {service} or {ttl}".to_owned()
                    );
                }
            }
        }
        if codes != 1 {
            return Err(format!(
                "must hold {{code}} exactly once (holds it {codes} times)"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The operator's templates: per service section, per built-in locale tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    sections: HashMap<String, HashMap<&'static str, Template>>,
}

/// The section that applies to every service without its own.
pub const DEFAULT_SECTION: &str = "default";

impl Overrides {
    /// Parses the file's text; every problem is named (`[section] tag: reason`).
    ///
    /// # Errors
    /// The list of problems when there is any.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| vec![format!("is not TOML: {}", e.message())])?;
        let mut problems = Vec::new();
        let mut sections = HashMap::new();
        for (section, value) in table {
            let section_ok = section == DEFAULT_SECTION
                || (section.len() == 34
                    && section.starts_with("VA")
                    && section[2..].bytes().all(|b| b.is_ascii_hexdigit()));
            if !section_ok {
                problems.push(format!(
                    "[{section}]: a section is `default` or a service SID (VA + 32 hex digits)"
                ));
                continue;
            }
            let Some(entries) = value.as_table() else {
                problems.push(format!(
                    "{section}: must be a table of locale = \"template\""
                ));
                continue;
            };
            let mut templates = HashMap::new();
            for (tag, template) in entries {
                let locale = match Locale::parse(tag) {
                    Ok(l) if l.tag().eq_ignore_ascii_case(tag) => l,
                    Ok(l) => {
                        problems.push(format!(
                            "[{section}] {tag}: not a built-in locale (did you mean `{}`?)",
                            l.tag()
                        ));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("[{section}] {tag}: {e}"));
                        continue;
                    }
                };
                let Some(template) = template.as_str() else {
                    problems.push(format!("[{section}] {tag}: must be a string"));
                    continue;
                };
                match Template::parse(template) {
                    Ok(t) => {
                        templates.insert(locale.tag(), t);
                    }
                    Err(reason) => {
                        problems.push(format!("[{section}] {tag}: the template {reason}"))
                    }
                }
            }
            sections.insert(section, templates);
        }
        if problems.is_empty() {
            Ok(Self { sections })
        } else {
            Err(problems)
        }
    }

    /// The operator's template for `locale` in `scope`'s section (a `/v2` service's SID; `None`
    /// is the default service), else in `[default]`; in each, the locale's own tag first, then
    /// its language's.
    pub fn find(&self, scope: Option<&str>, locale: Locale) -> Option<&Template> {
        let sections = [scope, Some(DEFAULT_SECTION)];
        sections
            .into_iter()
            .flatten()
            .filter_map(|s| self.sections.get(s))
            .find_map(|t| t.get(locale.tag()).or_else(|| t.get(locale.language())))
    }

    /// How many templates the file holds.
    pub fn len(&self) -> usize {
        self.sections.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "VA0123456789abcdef0123456789abcdef";

    #[test]
    fn finds_the_service_section_first_then_default_and_the_language_after_the_tag() {
        let o = Overrides::parse(&format!(
            "[default]\nen = \"D-en {{code}}\"\npt = \"D-pt {{code}}\"\n\
             [{SERVICE}]\nen = \"S-en {{code}}\"\npt-BR = \"S-ptBR {{code}}\"\n"
        ))
        .unwrap();
        let l = |t| Locale::parse(t).unwrap();
        let find = |scope, tag| o.find(scope, l(tag)).map(Template::as_str);
        assert_eq!(find(Some(SERVICE), "en"), Some("S-en {code}"));
        assert_eq!(find(Some(SERVICE), "en-GB"), Some("S-en {code}"));
        assert_eq!(find(Some(SERVICE), "pt-BR"), Some("S-ptBR {code}"));
        assert_eq!(find(Some(SERVICE), "pt"), Some("D-pt {code}"));
        assert_eq!(find(None, "pt-BR"), Some("D-pt {code}"));
        assert_eq!(find(None, "en"), Some("D-en {code}"));
        assert_eq!(find(None, "de"), None);
        assert_eq!(o.len(), 4);
    }

    #[test]
    fn names_every_bad_entry() {
        let cases = [
            ("not toml [", "is not TOML"),
            ("[VA12]\nen = \"{code}\"", "[VA12]"),
            ("default = 3", "must be a table"),
            ("[default]\nxx = \"{code}\"", "[default] xx"),
            ("[default]\nde-AT = \"{code}\"", "did you mean `de`"),
            ("[default]\nen = 3", "must be a string"),
            ("[default]\nen = \"no code\"", "exactly once"),
            ("[default]\nen = \"{code} {code}\"", "exactly once"),
            ("[default]\nen = \"{code} {name}\"", "does not start"),
            ("[default]\nen = \"{code} {\"", "does not start"),
            ("[default]\nen = \"  \"", "is empty"),
            ("[default]\nen = \"{code}\\t\"", "control character"),
        ];
        for (text, expected) in cases {
            let problems = Overrides::parse(text).expect_err(text);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{text:?}: {problems:?}"
            );
        }
        let long = format!("[default]\nen = \"{{code}}{}\"", "a".repeat(MAX_TEMPLATE));
        assert!(Overrides::parse(&long).is_err());
    }

    #[test]
    fn accepts_multi_line_templates_with_every_placeholder() {
        let o = Overrides::parse(
            "[default]\nen = \"\"\"\n{service}: {code}\nValid {ttl} min.\"\"\"\nzh-HK = \"{code}\"",
        )
        .unwrap();
        assert_eq!(o.len(), 2);
    }
}
