//! verifyd's HTTP-level tests: one binary, one module per feature, each test with its own
//! server on port 0, its own SQLite file (or PostgreSQL database and Redis key prefix) and a
//! clock it controls.

mod abuse;
mod auth;
mod bad_input;
mod channels;
mod client_ip;
mod concurrency;
mod conformance;
mod connections;
mod console;
mod console_browser;
mod counters;
mod doctor;
mod email;
mod events;
mod fake_twilio;
mod fraud_guard;
mod helpers;
mod jwt;
mod lifecycle;
mod messages;
mod meta_whatsapp;
mod operability;
mod outage;
mod process;
mod production;
mod receipts;
mod redis_limiter;
mod replicas;
mod rotation;
mod routes;
mod seed;
mod senders;
mod shared;
mod store_suite;
mod twilio_sync;
mod twilio_verify;
mod v2;
mod v2_cli;
mod v2_sdk;
mod v2_spec;
mod v2_store;
mod vendors;
