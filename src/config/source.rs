//! Where values come from and how problems are collected: the layered [`Sources`] (the process
//! environment, `.env.development`, `.env`, `verifyd.toml`, highest precedence first; the
//! defaults come from the table in `settings.rs`), and the [`Reader`] every component's `read`
//! uses, which records each setting's effective value for `verifyd config` and every problem
//! (secrets and URLs redacted) so that all of them are reported at once.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::parse::redact_url;
use super::settings::{ENV_CONFIG, ENV_RUST_LOG, setting};

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Env,
    DotEnvDevelopment,
    DotEnv,
    TomlFile,
    Default,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Env => "env",
            Origin::DotEnvDevelopment => ".env.development",
            Origin::DotEnv => ".env",
            Origin::TomlFile => "verifyd.toml",
            Origin::Default => "default",
        }
    }
}

/// One bad setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub name: String,
    /// The offending value, already redacted when secret.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} is not valid: {}",
            self.name, self.value, self.reason
        )
    }
}

/// Every problem found while loading the settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// A function from a variable name to its value, if set.
type Lookup = dyn Fn(&str) -> Option<String>;

/// The layered sources, highest precedence first.
pub struct Sources {
    layers: Vec<(Origin, HashMap<String, String>)>,
    /// The structured sections of the TOML file (`rate_limits`, `test_numbers`).
    pub(super) structured: toml::Table,
    env: Box<Lookup>,
}

impl Sources {
    /// Only `lookup` (tests pass a map; the binary passes the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        Self {
            layers: Vec::new(),
            structured: toml::Table::new(),
            env: Box::new(lookup),
        }
    }

    /// The process environment, `.env.development` and `.env` from `dir`, and the TOML file
    /// (`VERIFYD_CONFIG`, relative to `dir`, default `verifyd.toml`, optional unless named).
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed.
    pub fn load(
        dir: &Path,
        env: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut layers = Vec::new();
        for (origin, file) in [
            (Origin::DotEnvDevelopment, ".env.development"),
            (Origin::DotEnv, ".env"),
        ] {
            let path = dir.join(file);
            if !path.exists() {
                continue;
            }
            match dotenvy::from_path_iter(&path)
                .and_then(|it| it.collect::<Result<HashMap<_, _>, _>>())
            {
                Ok(map) => layers.push((origin, map)),
                Err(e) => problems.push(Problem {
                    name: file.to_owned(),
                    value: path.display().to_string(),
                    reason: format!("cannot be read: {e}"),
                }),
            }
        }
        let named =
            env(ENV_CONFIG).or_else(|| layers.iter().find_map(|(_, m)| m.get(ENV_CONFIG).cloned()));
        let toml_path = dir.join(named.as_deref().unwrap_or("verifyd.toml"));
        let mut structured = toml::Table::new();
        if toml_path.exists() {
            match read_toml(&toml_path) {
                Ok((map, sections)) => {
                    layers.push((Origin::TomlFile, map));
                    structured = sections;
                }
                Err(reason) => problems.push(Problem {
                    name: ENV_CONFIG.to_owned(),
                    value: toml_path.display().to_string(),
                    reason,
                }),
            }
        } else if named.is_some() {
            problems.push(Problem {
                name: ENV_CONFIG.to_owned(),
                value: toml_path.display().to_string(),
                reason: "file does not exist".to_owned(),
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            layers,
            structured,
            env: Box::new(env),
        })
    }

    pub(super) fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = (self.env)(name) {
            return Some((v, Origin::Env));
        }
        self.layers
            .iter()
            .find_map(|(origin, map)| map.get(name).map(|v| (v.clone(), *origin)))
    }
}

/// Reads `verifyd.toml`: a flat table whose keys are the variable names in lowercase without
/// `VERIFYD_` (`rate_limit_ip_max = 4`, `valid_country_codes = ["US", "CA"]`,
/// `twilio_account_sid = "AC…"`), plus the structured sections `[rate_limits.*]` and
/// `[[test_numbers]]`. Unknown keys are errors, so typos do not pass silently.
fn read_toml(path: &Path) -> Result<(HashMap<String, String>, toml::Table), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("is not valid TOML: {e}"))?;
    let mut out = HashMap::new();
    let mut structured = toml::Table::new();
    for (key, value) in table {
        if key == "rate_limits" || key == "test_numbers" || key == "event_endpoints" {
            structured.insert(key, value);
            continue;
        }
        let upper = key.to_ascii_uppercase();
        let name = if (upper.starts_with("TWILIO_") && setting(&upper).is_some())
            || upper == ENV_RUST_LOG
        {
            upper
        } else {
            format!("VERIFYD_{upper}")
        };
        if setting(&name).is_none() || name == ENV_CONFIG {
            return Err(format!("unknown setting `{key}`"));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => Err(format!("`{key}` must be a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(format!("`{key}` must be a string, number, boolean or list")),
        };
        out.insert(name, text);
    }
    Ok((out, structured))
}

/// Collects values and problems while the settings are read.
pub(super) struct Reader<'a> {
    pub(super) sources: &'a Sources,
    pub(super) problems: Vec<Problem>,
    pub(super) effective: Vec<(&'static str, String, Origin)>,
    /// Not errors, but worth a line at startup and in `verifyd config`.
    pub(super) warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(sources: &'a Sources) -> Self {
        Self {
            sources,
            problems: Vec::new(),
            effective: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The raw value (or default) of a documented setting, recorded for `verifyd config`.
    pub(super) fn raw(&mut self, name: &'static str) -> (Option<String>, Origin) {
        let spec = setting(name).expect("every ENV_* constant is in SETTINGS");
        let (value, origin) = match self.sources.get(name) {
            Some((v, o)) => (Some(v), o),
            None => (None, Origin::Default),
        };
        let shown = match (&value, spec.secret()) {
            (Some(v), true) if !v.is_empty() => "<redacted>".to_owned(),
            (Some(v), _) if spec.url() => redact_url(v),
            (Some(v), _) => v.clone(),
            (None, _) if spec.default.is_empty() => "<unset>".to_owned(),
            (None, _) => spec.default.to_owned(),
        };
        self.effective.push((name, shown, origin));
        (value, origin)
    }

    /// The value, or the default when unset.
    pub(super) fn text(&mut self, name: &'static str) -> String {
        let (value, _) = self.raw(name);
        value.unwrap_or_else(|| {
            setting(name)
                .map(|s| s.default.to_owned())
                .unwrap_or_default()
        })
    }

    /// Parses the value (or default) with `parse`, recording a problem on failure.
    pub(super) fn parse<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(name);
        match parse(text.trim()) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.problem(name, &text, reason);
                None
            }
        }
    }

    /// A problem with a setting that has no value (shown as `<unset>`, never redacted text).
    pub(super) fn unset_problem(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            name: name.to_owned(),
            value: "<unset>".to_owned(),
            reason: reason.into(),
        });
    }

    /// A line for the startup log and `verifyd config`.
    pub(super) fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    pub(super) fn problem(&mut self, name: &str, value: &str, reason: impl Into<String>) {
        let spec = setting(name);
        let secret = spec.is_some_and(|s| s.secret());
        self.problems.push(Problem {
            name: name.to_owned(),
            value: if secret {
                "<redacted>".to_owned()
            } else if spec.is_some_and(|s| s.url()) {
                format!("{:?}", redact_url(value))
            } else {
                format!("{value:?}")
            },
            reason: reason.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::*;

    #[test]
    fn layers_follow_precedence_env_then_dotenv_development_then_dotenv_then_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "VERIFYD_CODE_LENGTH=7\nVERIFYD_CODE_TTL=300\nVERIFYD_RATE_LIMIT_IP_MAX=9\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env.development"),
            "VERIFYD_CODE_LENGTH=8\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("verifyd.toml"),
            "code_length = 9\nrate_limit_ip_max = 2\nvalid_country_codes = [\"US\", \"CA\"]\n",
        )
        .unwrap();
        let sources = Sources::load(dir.path(), |k| {
            (k == ENV_CODE_TTL).then(|| "120".to_owned())
        })
        .unwrap();
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(
            c.codes.length.get(),
            8,
            ".env.development beats .env and toml"
        );
        assert_eq!(
            c.codes.ttl,
            Duration::from_secs(120),
            "real env beats files"
        );
        assert_eq!(c.limits.rate_limit_ip.max, 9, ".env beats toml");
        assert_eq!(c.limits.valid_country_codes.len(), 2, "toml beats defaults");
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verifyd.toml"), "rate_limit_ip_maxx = 4\n").unwrap();
        let err = Sources::load(dir.path(), |_| None).err().unwrap();
        assert!(err.to_string().contains("rate_limit_ip_maxx"), "{err}");
    }
}
