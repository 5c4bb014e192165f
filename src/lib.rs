//! verifyd: a self-hosted SMS one-time-code (2FA) service.
//!
//! An app calls `POST /mfa/send-code` to send a code to a phone and `POST /mfa/verify` to check
//! the code the user typed. In front of the engine sit the protections that keep a fintech safe
//! and solvent: a country allowlist, a channel allowlist, number-type rules and rate-limit
//! buckets keyed by client IP.
//!
//! # Layout
//!
//! The request path is `http` → `service` (policy, then provider) → `provider` → `store` /
//! `sms`:
//!
//! - [`config`]: every setting, read and validated once.
//! - [`domain`]: `PhoneNumber`, `Channel`, `OtpCode`, `Verification` and its lifecycle (pure).
//! - [`policy`]: geo allowlist, number types, buckets, client IP behind trusted proxies (pure).
//! - [`service`]: the ordered request path shared by HTTP and CLI.
//! - [`attempt_log`]: every send, check and refusal (a verification's own rows in its
//!   transaction, refusals off the request path).
//! - [`events`]: signed webhooks about verifications, through a transactional outbox.
//! - [`load`]: how busy the request path is (read by the events dispatcher, which yields to it).
//! - [`provider`]: the engines (`local`, `twilio-verify`) and the Twilio-side IP bucket sync.
//! - [`messages`]: wording per locale, operator templates, autofill lines, SMS segments.
//! - [`sms`]: senders (`console`, `twilio-messaging`, `webhook`, `null`).
//! - [`twilio`]: Twilio REST plumbing (auth, form posts, error bodies) shared by both.
//! - [`store`]: persistence (`sqlite`, or `postgres` shared by several replicas).
//! - [`fraud`]: the fraud guard (conversion by destination; blocks SMS pumping).
//! - [`limiter`]: GCRA buckets (`memory`, or `redis` shared by several replicas).
//! - [`crypto`]: keys derived from the server secrets; HMAC lookups and AEAD at rest.
//! - [`rotation`]: key-check records, the stable key, `verifyd rekey`.
//! - [`doctor`]: `verifyd doctor`, the settings checked against reality.
//! - [`clock`]: the time source, controllable in tests.
//! - [`http`]: routes, auth, the error envelope, probes.
//! - [`error`]: causes kept as errors, and the chain written once where an error is reported.
//! - [`twilio_api`]: the `/v2` face, Twilio Verify's API on the same service.
//! - [`console`]: `/console`, the operator's pages (session, templates, embedded assets).
//! - [`app`], [`cli`], [`telemetry`]: startup, the command line, logging.

// No `unsafe` outside `store::sqlite::file_sync`, which allows it for two SQLite FFI calls, and
// `events::yielding`, for the two libc calls that lower its thread's priority (`deny`, not
// `forbid`, so that those modules can; a new `allow` shows in review).
#![deny(unsafe_code)]

pub mod app;
pub mod attempt_log;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod events;
pub mod flood;
pub mod fraud;
pub mod http;
pub mod limiter;
pub mod load;
pub mod messages;
pub mod policy;
pub mod provider;
pub mod rotation;
pub mod service;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod twilio;
pub mod twilio_api;
