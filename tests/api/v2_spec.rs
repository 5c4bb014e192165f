//! Our own check of `/v2` answers against Twilio's OpenAPI description (tests/specs), because
//! Prism 5 skips the body check of any response schema that is `nullable` without a `type`
//! (Services, Verifications, Attempts): types, nullability, enums, patterns, lengths,
//! date-times (UTC, `Z`), URIs, array items; and, stricter than the spec, every property the
//! schema lists must be present and no other. Error answers must be Twilio's four fields.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    let path = crate::conformance::spec("twilio_verify_v2.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("spec readable")).expect("spec JSON")
});

static DATE_TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$").unwrap());

/// The spec's path template matching `path` (no query), with the operation for `method`;
/// literal segments win over parameters (`/v2/Attempts/Summary` over `/v2/Attempts/{Sid}`).
fn operation(method: &str, path: &str) -> Option<(String, &'static Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    SPEC["paths"]
        .as_object()?
        .iter()
        .filter(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') && !s.is_empty() || t == s)
        })
        .min_by_key(|(template, _)| template.matches('{').count())
        .and_then(|(template, item)| {
            item.get(method.to_ascii_lowercase())
                .map(|op| (template.clone(), op))
        })
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(&SPEC["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn validate(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            out.push(format!("{at}: null where the spec allows no null"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !ok {
        out.push(format!(
            "{at}: {value} is not of type {}",
            ty.unwrap_or("?")
        ));
        return;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {values:?}"));
    }
    if let Some(s) = value.as_str() {
        let n = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: {s:?} has the wrong length"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !Regex::new(p).unwrap().is_match(s)
        {
            out.push(format!("{at}: {s:?} does not match {p}"));
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("date-time") if !DATE_TIME.is_match(s) => {
                out.push(format!("{at}: {s:?} is not an ISO 8601 UTC date-time"));
            }
            Some("uri") if !(s.starts_with("http://") || s.starts_with("https://")) => {
                out.push(format!("{at}: {s:?} is not an absolute URI"));
            }
            _ => {}
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("uri-map")
        && let Some(map) = value.as_object()
    {
        for (k, v) in map {
            if !v.as_str().is_some_and(|s| s.starts_with("http")) {
                out.push(format!("{at}.{k}: {v} is not an absolute URI"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"), out);
        }
    }
    if let (Some(props), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, sub) in props {
            match object.get(name) {
                Some(v) => validate(sub, v, &format!("{at}.{name}"), out),
                None => out.push(format!("{at}: missing {name}")),
            }
        }
        for name in object.keys() {
            if !props.contains_key(name) {
                out.push(format!("{at}: {name} is not in the spec"));
            }
        }
    }
}

/// Twilio's error answer: exactly these four fields.
fn validate_error(status: u16, body: &Value, out: &mut Vec<String>) {
    let Some(object) = body.as_object() else {
        out.push(format!("error body is not an object: {body}"));
        return;
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["code", "message", "more_info", "status"] {
        out.push(format!("error fields {keys:?}"));
    }
    if body["status"] != status {
        out.push(format!("error status {} in a {status}", body["status"]));
    }
    let code = body["code"].as_u64().unwrap_or(0);
    if code == 0 || body["more_info"] != format!("https://www.twilio.com/docs/errors/{code}") {
        out.push(format!("error code/more_info: {body}"));
    }
}

/// The violations of one answer (`path` without its query) of Twilio's description.
pub fn violations(method: &str, path: &str, status: u16, body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some((template, op)) = operation(method, path) else {
        return vec![format!("{method} {path}: no such operation in the spec")];
    };
    if status == 204 {
        if !body.is_empty() {
            out.push(format!("{method} {template}: 204 with a body"));
        }
        return out;
    }
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return vec![format!(
            "{method} {template} {status}: body is not JSON: {body}"
        )];
    };
    if status >= 400 {
        validate_error(status, &value, &mut out);
        return out;
    }
    match op["responses"].get(status.to_string()) {
        Some(response) => validate(
            &response["content"]["application/json"]["schema"],
            &value,
            &format!("{method} {template} {status}"),
            &mut out,
        ),
        None => out.push(format!(
            "{method} {template}: status {status} not in the spec"
        )),
    }
    out
}

/// Whether Twilio's description declares `status` for this operation (it declares only
/// successes, and 429 on a verification create: its error answers are undocumented there).
pub fn declared(method: &str, path: &str, status: u16) -> bool {
    operation(method, path).is_some_and(|(_, op)| op["responses"].get(status.to_string()).is_some())
}

/// Asserts an answer passes [`violations`].
pub fn assert_valid(method: &str, path: &str, status: u16, body: &str) {
    let v = violations(method, path, status, body);
    assert!(v.is_empty(), "{method} {path} {status}: {v:#?}\n{body}");
}

#[test]
fn the_checker_catches_what_prism_skips() {
    let path = "/v2/Services/VA0123456789abcdef0123456789abcdef/Verifications";
    let bad = r#"{"sid":"VE01","send_code_attempts":"one"}"#;
    let v = violations("POST", path, 201, bad);
    assert!(v.iter().any(|m| m.contains("send_code_attempts")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("sid")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("missing url")), "{v:?}");
    let err = r#"{"code":20404,"message":"x","more_info":"https://www.twilio.com/docs/errors/20404","status":404}"#;
    assert!(
        violations(
            "GET",
            &format!("{path}/VE0123456789abcdef0123456789abcdef"),
            404,
            err
        )
        .is_empty()
    );
    assert!(!violations("GET", "/v2/Services", 404, r#"{"code":1}"#).is_empty());
}
