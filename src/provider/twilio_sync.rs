//! The Twilio-side IP bucket, as the seed configures it: the Verify service gets a RateLimit
//! `end_user_ip_address` with exactly one Bucket whose `Max`/`Interval` equal verifyd's IP bucket
//! (`VERIFYD_RATE_LIMIT_IP_MAX` per `VERIFYD_RATE_LIMIT_IP_INTERVAL`), and every start sends the
//! client's IP key in `RateLimits`, so Twilio enforces the same limit a second time.
//!
//! The sync creates what is missing, updates a bucket that differs, deletes extra buckets of
//! that one RateLimit, and leaves every other RateLimit alone. It reads before it writes, so a
//! service already in shape costs only reads. It runs at `verifyd serve` start (unless
//! `VERIFYD_TWILIO_SYNC_RATE_LIMITS=false`) and as `verifyd twilio sync`; at start a failure is
//! logged and the service runs on (verifyd's own IP bucket is enforced either way).

use std::fmt;

use serde::Deserialize;

use super::twilio_verify::IP_RATE_LIMIT;
use crate::config::{BucketConfig, Config, ProviderKind};
use crate::twilio::{TwilioClient, TwilioError};

/// Pages followed at most when listing (100 items each).
const MAX_PAGES: usize = 50;

/// Why the sync could not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The settings do not allow a sync (no Twilio credentials, or the IP bucket is off).
    #[error("{0}")]
    NotConfigured(String),
    /// A Twilio call failed; what was done before it stays done.
    #[error("Twilio rate-limit sync failed: {0}")]
    Twilio(#[from] TwilioError),
}

/// One change the sync made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAction {
    CreatedRateLimit {
        sid: String,
    },
    CreatedBucket {
        sid: String,
        max: u64,
        interval: u64,
    },
    UpdatedBucket {
        sid: String,
        max: u64,
        interval: u64,
    },
    DeletedBucket {
        sid: String,
    },
}

/// What the sync found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The `RK…` sid of the `end_user_ip_address` RateLimit.
    pub rate_limit_sid: String,
    pub max: u64,
    pub interval: u64,
    /// Empty when the service was already in shape.
    pub actions: Vec<SyncAction>,
}

impl fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RateLimit {IP_RATE_LIMIT} ({}) has one bucket of {} per {} s",
            self.rate_limit_sid, self.max, self.interval
        )?;
        if self.actions.is_empty() {
            return f.write_str(": already in sync, nothing changed");
        }
        let done: Vec<String> = self
            .actions
            .iter()
            .map(|a| match a {
                SyncAction::CreatedRateLimit { sid } => format!("created RateLimit {sid}"),
                SyncAction::CreatedBucket { sid, .. } => format!("created bucket {sid}"),
                SyncAction::UpdatedBucket { sid, .. } => format!("updated bucket {sid}"),
                SyncAction::DeletedBucket { sid } => format!("deleted extra bucket {sid}"),
            })
            .collect();
        write!(f, ": {}", done.join(", "))
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new", alias = "rate_limits", alias = "buckets")]
    items: Vec<T>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct RateLimit {
    sid: String,
    unique_name: Option<String>,
}

#[derive(Deserialize)]
struct Bucket {
    sid: String,
    max: u64,
    interval: u64,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

/// Makes the service's `end_user_ip_address` RateLimit hold exactly one bucket equal to `ip`.
///
/// # Errors
/// [`TwilioError`] of the first call that failed.
pub async fn sync_rate_limits(
    api: &TwilioClient,
    service_sid: &str,
    ip: BucketConfig,
) -> Result<SyncOutcome, TwilioError> {
    let max = u64::from(ip.max);
    let interval = ip.interval.as_secs().max(1);
    let base = format!("/v2/Services/{service_sid}/RateLimits");
    let mut actions = Vec::new();

    let existing = list::<RateLimit>(api, &format!("{base}?PageSize=100"))
        .await?
        .into_iter()
        .find(|r| r.unique_name.as_deref() == Some(IP_RATE_LIMIT));
    let (rate_limit_sid, buckets) = match existing {
        Some(rate_limit) => {
            let buckets = list::<Bucket>(
                api,
                &format!("{base}/{}/Buckets?PageSize=100", rate_limit.sid),
            )
            .await?;
            (rate_limit.sid, buckets)
        }
        None => {
            let created: Created = api
                .post_form(
                    &base,
                    &[
                        ("UniqueName", IP_RATE_LIMIT),
                        (
                            "Description",
                            "verifyd: client IP (VERIFYD_RATE_LIMIT_IP_MAX per VERIFYD_RATE_LIMIT_IP_INTERVAL)",
                        ),
                    ],
                )
                .await?;
            actions.push(SyncAction::CreatedRateLimit {
                sid: created.sid.clone(),
            });
            (created.sid, Vec::new())
        }
    };

    let buckets_path = format!("{base}/{rate_limit_sid}/Buckets");
    let max_text = max.to_string();
    let interval_text = interval.to_string();
    let form = [
        ("Max", max_text.as_str()),
        ("Interval", interval_text.as_str()),
    ];
    let keep = buckets
        .iter()
        .position(|b| b.max == max && b.interval == interval)
        .or(if buckets.is_empty() { None } else { Some(0) });
    match keep {
        Some(i) if buckets[i].max == max && buckets[i].interval == interval => {}
        Some(i) => {
            let sid = &buckets[i].sid;
            let _: Created = api
                .post_form(&format!("{buckets_path}/{sid}"), &form)
                .await?;
            actions.push(SyncAction::UpdatedBucket {
                sid: sid.clone(),
                max,
                interval,
            });
        }
        None => {
            let created: Created = api.post_form(&buckets_path, &form).await?;
            actions.push(SyncAction::CreatedBucket {
                sid: created.sid,
                max,
                interval,
            });
        }
    }
    for (i, extra) in buckets.iter().enumerate() {
        if Some(i) != keep {
            api.delete(&format!("{buckets_path}/{}", extra.sid)).await?;
            actions.push(SyncAction::DeletedBucket {
                sid: extra.sid.clone(),
            });
        }
    }
    Ok(SyncOutcome {
        rate_limit_sid,
        max,
        interval,
        actions,
    })
}

/// The service's `end_user_ip_address` RateLimit, read only: its sid and its buckets as
/// `(max, interval)`, or `None` when the service has none (for `verifyd doctor`).
///
/// # Errors
/// [`TwilioError`] of the first call that failed.
pub async fn read_ip_buckets(
    api: &TwilioClient,
    service_sid: &str,
) -> Result<Option<(String, Vec<(u64, u64)>)>, TwilioError> {
    let base = format!("/v2/Services/{service_sid}/RateLimits");
    let Some(limit) = list::<RateLimit>(api, &format!("{base}?PageSize=100"))
        .await?
        .into_iter()
        .find(|r| r.unique_name.as_deref() == Some(IP_RATE_LIMIT))
    else {
        return Ok(None);
    };
    let buckets = list::<Bucket>(api, &format!("{base}/{}/Buckets?PageSize=100", limit.sid))
        .await?
        .into_iter()
        .map(|b| (b.max, b.interval))
        .collect();
    Ok(Some((limit.sid, buckets)))
}

async fn list<T: serde::de::DeserializeOwned>(
    api: &TwilioClient,
    first: &str,
) -> Result<Vec<T>, TwilioError> {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    for _ in 0..MAX_PAGES {
        let Some(path) = next.take() else { break };
        let page: Page<T> = api.get(&path).await?;
        items.extend(page.items);
        next = page
            .meta
            .and_then(|m| m.next_page_url)
            .and_then(|url| api.relative_path(&url).map(str::to_owned));
    }
    Ok(items)
}

/// The sync the settings describe (used by `verifyd twilio sync`, which runs it whatever
/// `VERIFYD_TWILIO_SYNC_RATE_LIMITS` says).
///
/// # Errors
/// [`SyncError::NotConfigured`] without Twilio credentials or with the IP bucket off;
/// [`SyncError::Twilio`] when a call failed.
pub async fn sync_from_config(config: &Config) -> Result<SyncOutcome, SyncError> {
    let credentials = config.twilio.credentials.as_ref().ok_or_else(|| {
        SyncError::NotConfigured(
            "the Twilio rate-limit sync needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID"
                .to_owned(),
        )
    })?;
    if !config.limits.rate_limit_ip.enabled() {
        return Err(SyncError::NotConfigured(
            "VERIFYD_RATE_LIMIT_IP_MAX=0 turns the IP bucket off: there is no Twilio-side bucket to sync, and no RateLimits are sent"
                .to_owned(),
        ));
    }
    let api = TwilioClient::new(
        &config.twilio.verify_base_url,
        &credentials.account_sid,
        credentials.auth_token.clone(),
        config.twilio.timeout,
    )?;
    Ok(sync_rate_limits(&api, &credentials.service_sid, config.limits.rate_limit_ip).await?)
}

/// The startup sync of `verifyd serve`: runs only with provider twilio-verify and
/// `VERIFYD_TWILIO_SYNC_RATE_LIMITS` on, logs its outcome, and never fails the start.
pub async fn sync_at_start(config: &Config) {
    if config.delivery.provider != ProviderKind::TwilioVerify {
        return;
    }
    if !config.twilio.sync_rate_limits {
        tracing::info!(
            "VERIFYD_TWILIO_SYNC_RATE_LIMITS=false: the Twilio-side IP bucket is not synced at start"
        );
        return;
    }
    match sync_from_config(config).await {
        Ok(outcome) if outcome.actions.is_empty() => {
            tracing::info!("Twilio rate limits: {outcome}");
        }
        Ok(outcome) => tracing::warn!("Twilio rate limits changed: {outcome}"),
        Err(SyncError::NotConfigured(why)) => {
            tracing::info!("Twilio rate limits not synced: {why}")
        }
        Err(e) => tracing::error!(
            "{e}. verifyd serves on and still enforces its own IP bucket; fix the cause and run `verifyd twilio sync`"
        ),
    }
}
