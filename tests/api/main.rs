//! verifyd's HTTP-level tests: one binary, one module per feature, each test with its own
//! server on port 0, its own SQLite file and a clock it controls.

mod abuse;
mod auth;
mod bad_input;
mod client_ip;
mod concurrency;
mod conformance;
mod doctor;
mod fake_twilio;
mod helpers;
mod lifecycle;
mod operability;
mod process;
mod production;
mod rotation;
mod seed;
mod senders;
mod twilio_sync;
mod twilio_verify;
