//! Build script: records when this binary was built, as `VERIFYD_BUILD_UNIX` (seconds since the
//! Unix epoch; `SOURCE_DATE_EPOCH` when set, for reproducible builds). `verifyd doctor` uses it
//! as a lower bound for a sane system clock. It reruns only when this file or
//! `SOURCE_DATE_EPOCH` changes, so the value is the first build's time: still a lower bound.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // sqlx::migrate! embeds migrations/; a new file there must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=VERIFYD_BUILD_UNIX={secs}");
}
