//! Error plumbing shared by every layer. Each layer's error enum classifies (503 or 500, exit
//! 64 or 69, …) and keeps the underlying error as its `source()`, never as text; [`Chain`]
//! writes an error with its causes, once, where it is reported: the request log line, the
//! startup message, a background task's warning. Nothing here reaches an HTTP body.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// Any error, as a cause kept by a layer's error.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// An error and each of its causes, `outer: inner: innermost`, for logs and messages.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// What was being done when an error happened: shows `what`, with the error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Context {
    what: Cow<'static, str>,
    #[source]
    source: BoxError,
}

impl Context {
    /// `error`, as the cause of failing at `what`.
    pub fn new(what: impl Into<Cow<'static, str>>, error: impl Into<BoxError>) -> Self {
        Self {
            what: what.into(),
            source: error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_once_in_order() {
        let io = std::io::Error::other("disk on fire");
        let e = Context::new(
            "cannot open the database",
            Context::new("opening verifyd.db", io),
        );
        assert_eq!(
            Chain(&e).to_string(),
            "cannot open the database: opening verifyd.db: disk on fire"
        );
        assert_eq!(e.to_string(), "cannot open the database");
    }
}
