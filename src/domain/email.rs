//! Email addresses for the `email` channel. [`EmailAddress::parse`] accepts the plain form people
//! type and mail servers deliver to everywhere, and nothing else:
//!
//! - `local@domain`, at most 254 characters in all (RFC 5321's path limit less the brackets),
//!   ASCII only (no SMTPUTF8: an internationalised domain is given in its `xn--` form);
//! - the local part 1 to 64 characters of RFC 5322's dot-atom: letters, digits and
//!   ``!#$%&'*+-/=?^_`{|}~``, dots only between them (none first, last or doubled); no quoted
//!   strings, comments or spaces;
//! - the domain at least two labels, each 1 to 63 letters, digits or hyphens, no hyphen first or
//!   last, the last label not all digits (so no IP literal or bare address); it is lowercased.
//!
//! The local part keeps its case (RFC 5321 leaves it to the receiving server); lookups and limits
//! know a recipient by the address lowercased whole ([`EmailAddress::key`]), so `Ann@x.org` and
//! `ann@x.org` are one recipient (one pending verification, one set of buckets), while mail goes
//! to the address as given. Not here: whether the domain receives mail (no DNS).

use std::fmt;

/// Longest address (RFC 5321 forward-path 256 less the angle brackets).
const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321 4.5.3.1.1).
const MAX_LOCAL: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL: usize = 63;

/// Why a string is not an address this service sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email address is empty")]
    Empty,
    #[error("the email address is longer than 254 characters")]
    TooLong,
    #[error("the email address has no single @ between a local part and a domain")]
    NotAnAddress,
    #[error("the part before @ is empty, longer than 64 characters or not a dot-atom")]
    InvalidLocalPart,
    #[error("the domain is not a dotted name of letters, digits and hyphens")]
    InvalidDomain,
    /// Well formed, but the mail server refused the mailbox.
    #[error("the mail server refused this address")]
    Refused,
}

/// A valid email address: the local part as given, the domain lowercased.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    address: String,
    /// Byte index of the `@`.
    at: usize,
}

fn atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= MAX_LABEL
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

impl EmailAddress {
    /// Parses an address (surrounding ASCII whitespace ignored) by the rule of the module docs.
    ///
    /// # Errors
    /// [`EmailError`] naming the first rule the input breaks.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let input = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotAnAddress);
        };
        if local.is_empty() || domain.is_empty() {
            return Err(EmailError::NotAnAddress);
        }
        if !valid_local(local) {
            return Err(EmailError::InvalidLocalPart);
        }
        if !valid_domain(domain) {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Self {
            address: format!("{local}@{}", domain.to_ascii_lowercase()),
            at: local.len(),
        })
    }

    /// The address (`Ann@example.org`).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.address[..self.at]
    }

    /// The domain, lowercase.
    pub fn domain(&self) -> &str {
        &self.address[self.at + 1..]
    }

    /// The address lowercased whole: what lookup digests and rate limits know a recipient by.
    pub fn key(&self) -> String {
        self.address.to_ascii_lowercase()
    }

    /// The address for logs and pages: the first character of the local part and of the
    /// domain, and the last label (`j***@e***.com`).
    pub fn masked(&self) -> String {
        let domain = self.domain();
        let tld = domain.rsplit('.').next().unwrap_or_default();
        format!("{}***@{}***.{tld}", &self.local_part()[..1], &domain[..1])
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs: never the full address.
        write!(f, "EmailAddress({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_what_is_not_a_plain_address() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        let long_all = format!("{}@{}.com", "a".repeat(60), "b.".repeat(100));
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("+14155552671", EmailError::NotAnAddress),
            ("ann", EmailError::NotAnAddress),
            ("ann@", EmailError::NotAnAddress),
            ("@example.com", EmailError::NotAnAddress),
            ("a@b@example.com", EmailError::NotAnAddress),
            (".ann@example.com", EmailError::InvalidLocalPart),
            ("ann.@example.com", EmailError::InvalidLocalPart),
            ("a..nn@example.com", EmailError::InvalidLocalPart),
            ("\"ann\"@example.com", EmailError::InvalidLocalPart),
            ("an n@example.com", EmailError::InvalidLocalPart),
            ("ann(x)@example.com", EmailError::InvalidLocalPart),
            ("änn@example.com", EmailError::InvalidLocalPart),
            (&long_local, EmailError::InvalidLocalPart),
            ("ann@localhost", EmailError::InvalidDomain),
            ("ann@[127.0.0.1]", EmailError::InvalidDomain),
            ("ann@127.0.0.1", EmailError::InvalidDomain),
            ("ann@-example.com", EmailError::InvalidDomain),
            ("ann@example-.com", EmailError::InvalidDomain),
            ("ann@example..com", EmailError::InvalidDomain),
            ("ann@example.com.", EmailError::InvalidDomain),
            ("ann@exa_mple.com", EmailError::InvalidDomain),
            ("ann@exämple.com", EmailError::InvalidDomain),
            ("ann@example.com\r\nBcc: x@y.z", EmailError::NotAnAddress),
            ("ann@exam\nple.com", EmailError::InvalidDomain),
            (&long_label, EmailError::InvalidDomain),
            (&long_all, EmailError::TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(EmailAddress::parse(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn lowercases_the_domain_keeps_the_local_part_and_masks() {
        let a = EmailAddress::parse("  Jane.Doe+otp@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe+otp@example.com");
        assert_eq!(a.local_part(), "Jane.Doe+otp");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.key(), "jane.doe+otp@example.com");
        assert_eq!(a.masked(), "J***@e***.com");
        assert_eq!(format!("{a:?}"), "EmailAddress(J***@e***.com)");
        assert_eq!(
            EmailAddress::parse("x@xn--bcher-kva.example")
                .unwrap()
                .as_str(),
            "x@xn--bcher-kva.example"
        );
    }

    proptest! {
        #[test]
        fn accepts_dot_atoms_at_dotted_names(
            local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_+-]{1,10}){0,2}",
            labels in prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", 1..4),
            tld in "[a-zA-Z]{2,10}",
        ) {
            let input = format!("{local}@{}.{tld}", labels.join("."));
            let a = EmailAddress::parse(&input).unwrap();
            prop_assert_eq!(a.local_part(), local.as_str());
            prop_assert_eq!(a.domain(), input[local.len() + 1..].to_ascii_lowercase());
            let head = format!("{}***@", &local[..1]);
            prop_assert!(a.masked().starts_with(&head));
        }
    }
}
