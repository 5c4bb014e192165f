//! Twilio's request parameters: an `application/x-www-form-urlencoded` body (POST) or the query
//! string (GET), PascalCase names, at most 16 KiB. Unknown names are ignored (Twilio's
//! behaviour); a known one with a bad value is refused by its handler with 60200 naming it.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};

use super::error::TwilioError;
use crate::http::ApiError;
use crate::http::extract::MAX_BODY_BYTES;

/// The parameters of one request, in the order sent.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = TwilioError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || TwilioError::from_api(ApiError::PayloadTooLarge, Default::default());
        if req.method() == Method::GET || req.method() == Method::DELETE {
            let query = req.uri().query().unwrap_or("");
            if query.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            return parse(query.as_bytes());
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    too_large()
                }
                _ => TwilioError::invalid("the body could not be read"),
            })?;
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        if !is_form {
            return Err(TwilioError::invalid(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        parse(&bytes)
    }
}

fn parse(bytes: &[u8]) -> Result<Params, TwilioError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map(Params)
        .map_err(|_| TwilioError::invalid("the body is not a valid form"))
}

impl Params {
    /// Parameters from name-value pairs (the CLI builds Twilio's parameters this way).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required parameter (present and not empty).
    ///
    /// # Errors
    /// 400/60200 naming it.
    pub fn required(&self, name: &str) -> Result<&str, TwilioError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(TwilioError::missing(name)),
        }
    }

    /// A boolean (`true`/`false`, any case, as the SDKs send them).
    ///
    /// # Errors
    /// 400/60200 naming it.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, TwilioError> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(TwilioError::invalid(name)),
            })
            .transpose()
    }

    /// A whole number within `range`.
    ///
    /// # Errors
    /// 400/60200 naming it.
    pub fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, TwilioError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| TwilioError::invalid(name))
            })
            .transpose()
    }

    /// A sid with `prefix` and 32 hex digits.
    ///
    /// # Errors
    /// 400/60200 naming it.
    pub fn sid(&self, name: &str, prefix: &str) -> Result<Option<&str>, TwilioError> {
        self.get(name)
            .map(|v| {
                if super::sid::valid(v, prefix) {
                    Ok(v)
                } else {
                    Err(TwilioError::invalid(name))
                }
            })
            .transpose()
    }

    /// A JSON object (Twilio's `RateLimits`, `Tags`, `ChannelConfiguration`, …).
    ///
    /// # Errors
    /// 400/60200 naming it.
    pub fn json_object(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, TwilioError> {
        self.get(name)
            .map(|v| match serde_json::from_str::<serde_json::Value>(v) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => Err(TwilioError::invalid(name)),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_are_checked() {
        let p = parse(b"A=true&B=FALSE&C=maybe&N=7&M=x&S=VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&J=%7B%22a%22%3A1%7D&K=%5B%5D").unwrap();
        assert_eq!(p.bool("A").unwrap(), Some(true));
        assert_eq!(p.bool("B").unwrap(), Some(false));
        assert_eq!(p.bool("C").unwrap_err().code, 60200);
        assert_eq!(p.bool("Z").unwrap(), None);
        assert_eq!(p.int("N", 4..=10).unwrap(), Some(7));
        assert!(p.int("N", 8..=10).is_err());
        assert!(p.int("M", 0..=10).is_err());
        assert!(p.sid("S", "VA").unwrap().is_some());
        assert!(p.sid("S", "VE").is_err());
        assert!(p.json_object("J").unwrap().is_some());
        assert!(p.json_object("K").is_err());
        assert!(p.required("Z").unwrap_err().message.contains('Z'));
    }
}
