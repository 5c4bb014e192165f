//! Secret rotation, on the store side: the key-check records that tie a database to the secrets
//! its data is sealed under, the database's stable key they carry, and `verifyd rekey`.
//!
//! **Key-check records.** The `key_checks` table has one row per server secret that data in the
//! database may be sealed under: the database's [`StableKey`] sealed under that secret (AEAD, so
//! opening it proves the configured secret is the one that wrote it). At startup,
//! [`open_keys`] opens every row with the configured secrets and refuses to start when one does
//! not open (a secret was dropped before `verifyd rekey` finished, or the wrong secret is
//! configured): data under it would otherwise silently look absent. It then adds the newest
//! secret's row (new data is about to be sealed under it). The serving process re-adds that row
//! every purge interval, so a replica still writing under an older secret after a rekey makes
//! the next start refuse instead of losing its rows.
//!
//! **Stable key.** 32 random bytes made when the database is first used. Rate-limit bucket keys
//! and `Idempotency-Key` digests are derived from it, not from the secrets, so a number's
//! buckets are the same buckets before, during and after a rotation, and a retried request finds
//! its stored answer.
//!
//! **Rekey.** [`rekey`] walks the verifications in sid order, a batch at a time, and rewrites each
//! row not yet under the newest secret in one conditional `UPDATE` of its four keyed columns
//! (lookup digest, sealed number, code digest re-derived from the opened code, sealed code),
//! guarded by the sealed values it read. Status, check and send counts are never written, so a
//! check or send running at the same moment is neither lost nor doubled, and the one-pending
//! rule of the unique index still holds. Stored idempotent answers are re-sealed the same way.
//! When nothing is left under an older secret, their key-check rows are deleted and the old
//! secret can be dropped.

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{KeyId, Keys, ServerSecrets, StableKey};
use crate::domain::{Timestamp, VerificationStatus};
use crate::store::{
    KeyCheck, RekeyOutcome, SealedVerification, Store, StoreError, VerificationStore,
};

/// The AEAD context of key-check records.
const KEY_CHECK_CONTEXT: &[u8] = b"verifyd/key-check";
/// The AEAD context of sealed phone numbers (the local engine's rows).
pub const PHONE_CONTEXT: &[u8] = b"verifyd/phone";
/// Rows read per batch by `rekey`.
const BATCH: u32 = 200;

/// Why the keys could not be opened or the data not re-keyed. The texts name key ids, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Data is sealed under a secret that is not configured.
    #[error(
        "the database holds data sealed under key id {}, which none of the configured secrets \
         (key id {}) has: add the secret with that key id to VERIFYD_SECRET (newest first, \
         comma-separated); an old secret can be dropped only after `verifyd rekey`",
        ids(missing),
        ids(configured)
    )]
    UnknownKeys {
        missing: Vec<KeyId>,
        configured: Vec<KeyId>,
    },
    /// A record with a configured key id does not open: another secret with the same key id, or
    /// a damaged record.
    #[error(
        "the key-check record of key id {0} does not open with the configured secret of that key \
         id: wrong secret, or a damaged database"
    )]
    WrongSecret(KeyId),
    /// Records open but disagree (written by two unrelated databases' processes).
    #[error(
        "the database's key-check records hold different stable keys: it was written with \
         secrets of another database"
    )]
    Inconsistent,
    /// A row could not be read with the configured secrets.
    #[error("verification {sid} cannot be re-keyed: {reason}")]
    Unreadable { sid: String, reason: String },
    /// Rows are still sealed under older secrets after the pass.
    #[error(
        "{0} row(s) are still sealed under an older secret (is a process still configured with \
         the old secret first? finish that rollout, then run `verifyd rekey` again)"
    )]
    Incomplete(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ids(list: &[KeyId]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The service's keys, and the newest secret's key-check record (re-added periodically).
pub struct OpenedKeys {
    pub keys: Keys,
    pub newest_check: KeyCheck,
}

/// Opens every key-check record with `secrets`, adds the newest secret's record, and returns
/// the keys (with the database's stable key).
///
/// # Errors
/// [`RotationError::UnknownKeys`] when data is sealed under a secret that is not configured;
/// [`RotationError::WrongSecret`] / [`RotationError::Inconsistent`] for records that do not
/// open or disagree; [`RotationError::Store`].
pub async fn open_keys(
    store: &dyn Store,
    secrets: &ServerSecrets,
    now: Timestamp,
) -> Result<OpenedKeys, RotationError> {
    let checks = store.key_checks().await?;
    let stable = match read_checks(secrets, &checks)? {
        Some(stable) => stable,
        None => {
            // No record yet: a new database, or one from before key checks. Its rows must
            // still open with the configured secrets.
            if let Some(row) = store.sealed_verifications(None, 1).await?.first()
                && let Some(id) = KeyId::of_sealed(&row.code_sealed)
                && !secrets.iter().any(|s| s.key_id() == id)
            {
                return Err(RotationError::UnknownKeys {
                    missing: vec![id],
                    configured: secrets.iter().map(|s| s.key_id()).collect(),
                });
            }
            StableKey::generate()
        }
    };
    let mut keys = Keys::new(secrets, &stable);
    let newest = keys.newest_key_id();
    if !checks.iter().any(|c| c.key_id == newest.0) {
        store.add_key_check(&key_check(&keys, &stable), now).await?;
        if checks.is_empty() {
            // Another process may have created the database's stable key first: theirs wins.
            let again = store.key_checks().await?;
            if let Some(stored) = read_checks(secrets, &again)?
                && stored != stable
            {
                keys = Keys::new(secrets, &stored);
                return Ok(OpenedKeys {
                    newest_check: key_check(&keys, &stored),
                    keys,
                });
            }
        }
    }
    Ok(OpenedKeys {
        newest_check: key_check(&keys, &stable),
        keys,
    })
}

/// What [`check_keys`] found, for `verifyd doctor`.
#[derive(Debug)]
pub struct KeyCheckReport {
    /// Key ids of the database's records (all open with the configured secrets).
    pub stored: Vec<KeyId>,
    /// Key ids of the configured secrets, newest first.
    pub configured: Vec<KeyId>,
}

/// Opens every key-check record with `secrets`, changing nothing (for `verifyd doctor`).
///
/// # Errors
/// As [`open_keys`].
pub async fn check_keys(
    store: &dyn Store,
    secrets: &ServerSecrets,
) -> Result<KeyCheckReport, RotationError> {
    let checks = store.key_checks().await?;
    read_checks(secrets, &checks)?;
    Ok(KeyCheckReport {
        stored: checks
            .iter()
            .filter_map(|c| KeyId::from_slice(&c.key_id))
            .collect(),
        configured: secrets.iter().map(|s| s.key_id()).collect(),
    })
}

/// The stable key the records hold (all must open and agree), or `None` without records.
fn read_checks(
    secrets: &ServerSecrets,
    checks: &[KeyCheck],
) -> Result<Option<StableKey>, RotationError> {
    // Opening needs only the secrets; the stable key of this probe is irrelevant.
    let probe = Keys::new(secrets, &StableKey::generate());
    let mut missing = Vec::new();
    let mut stable: Option<StableKey> = None;
    for check in checks {
        let Some(id) = KeyId::from_slice(&check.key_id) else {
            return Err(StoreError::internal("corrupt key id in key_checks").into());
        };
        if !probe.knows(id) {
            missing.push(id);
            continue;
        }
        let opened = probe
            .open(&check.sealed, KEY_CHECK_CONTEXT)
            .ok()
            .and_then(|bytes| StableKey::from_slice(&bytes))
            .ok_or(RotationError::WrongSecret(id))?;
        match &stable {
            Some(s) if *s != opened => return Err(RotationError::Inconsistent),
            Some(_) => {}
            None => stable = Some(opened),
        }
    }
    if !missing.is_empty() {
        return Err(RotationError::UnknownKeys {
            missing,
            configured: probe.key_ids(),
        });
    }
    Ok(stable)
}

fn key_check(keys: &Keys, stable: &StableKey) -> KeyCheck {
    KeyCheck {
        key_id: keys.newest_key_id().0.to_vec(),
        sealed: keys.seal(stable.expose(), KEY_CHECK_CONTEXT),
    }
}

/// What `verifyd rekey` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// Verifications moved to the newest secret.
    pub verifications: u64,
    /// Verifications already under it (or moved by someone else meanwhile).
    pub untouched: u64,
    /// Stored idempotent answers re-sealed.
    pub answers: u64,
    /// Pending verifications closed because the number had another one under the newest
    /// secret (only after processes wrote with different secrets first).
    pub closed_duplicates: u64,
    /// Key-check records of older secrets deleted at the end.
    pub retired_keys: u64,
}

impl std::fmt::Display for RekeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "re-keyed {} verification(s) ({} already under the newest secret), re-sealed {} stored answer(s), \
             closed {} duplicate pending verification(s), retired {} older key id(s)",
            self.verifications,
            self.untouched,
            self.answers,
            self.closed_duplicates,
            self.retired_keys
        )
    }
}

/// Moves every row to the newest secret, then retires the older secrets' key-check records.
/// Safe while the service runs (see the module docs); safe to run again.
///
/// # Errors
/// [`RotationError::Incomplete`] when rows are still under an older secret at the end (nothing
/// is retired then); [`RotationError::Unreadable`]; [`RotationError::Store`].
pub async fn rekey(
    store: &dyn Store,
    keys: &Keys,
    now: Timestamp,
) -> Result<RekeyReport, RotationError> {
    let mut report = RekeyReport::default();
    let mut after = None;
    loop {
        let batch = store.sealed_verifications(after.as_ref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.sid.clone());
        for row in &batch {
            move_verification(store, keys, row, now, &mut report).await?;
        }
    }
    let mut after = None;
    loop {
        let batch = store.sealed_answers(after.as_ref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.key_digest);
        for answer in &batch {
            if keys.is_newest(&answer.body_sealed) {
                continue;
            }
            // An answer sealed under a secret we do not have cannot be replayed anyway.
            let Ok(body) = keys.open(&answer.body_sealed, &answer.key_digest) else {
                continue;
            };
            let resealed = keys.seal(&body, &answer.key_digest);
            if store
                .reseal_answer(&answer.key_digest, &answer.body_sealed, &resealed)
                .await?
            {
                report.answers += 1;
            }
        }
    }
    let left = count_old(store, keys).await?;
    if left > 0 {
        return Err(RotationError::Incomplete(left));
    }
    report.retired_keys = store.retire_key_checks(&keys.newest_key_id().0).await?;
    Ok(report)
}

/// Rows (verifications and stored answers) still sealed under an older secret.
async fn count_old(store: &dyn Store, keys: &Keys) -> Result<u64, RotationError> {
    let mut left = 0;
    let mut after = None;
    loop {
        let batch = store.sealed_verifications(after.as_ref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.sid.clone());
        left += batch
            .iter()
            .filter(|r| !(keys.is_newest(&r.code_sealed) && keys.is_newest(&r.phone_sealed)))
            .count() as u64;
    }
    let mut after = None;
    loop {
        let batch = store.sealed_answers(after.as_ref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.key_digest);
        left += batch
            .iter()
            .filter(|a| {
                !keys.is_newest(&a.body_sealed) && keys.open(&a.body_sealed, &a.key_digest).is_ok()
            })
            .count() as u64;
    }
    Ok(left)
}

/// Rewrites one verification under the newest secret (see [`rekey`]); also used by the local
/// engine when a send finds the number's pending verification under an older secret, so the
/// number keeps one pending verification.
///
/// # Errors
/// [`RotationError::Unreadable`] when its sealed columns do not open; [`RotationError::Store`].
pub async fn move_verification(
    store: &dyn VerificationStore,
    keys: &Keys,
    row: &SealedVerification,
    now: Timestamp,
    report: &mut RekeyReport,
) -> Result<(), RotationError> {
    if keys.is_newest(&row.code_sealed) && keys.is_newest(&row.phone_sealed) {
        report.untouched += 1;
        return Ok(());
    }
    let new = rekeyed(keys, row)?;
    // At most twice: a conflict closes the older duplicate, which then re-keys freely.
    for _ in 0..2 {
        match store.rekey_verification(row, &new).await? {
            RekeyOutcome::Rekeyed => {
                report.verifications += 1;
                return Ok(());
            }
            // Re-keyed by someone else first (sealed columns are written only at insert and by
            // a rekey), or purged: nothing left to do for this row.
            RekeyOutcome::Changed => {
                report.untouched += 1;
                return Ok(());
            }
            RekeyOutcome::Conflict => {
                if store
                    .close(&row.sid, VerificationStatus::Canceled, now)
                    .await?
                {
                    report.closed_duplicates += 1;
                    tracing::warn!(sid = %row.sid, "closed a duplicate pending verification found under an older secret");
                }
            }
        }
    }
    Ok(())
}

/// The row's columns under the newest secret: the number and code are opened with whichever
/// secret sealed them, and the code digest is re-derived from the code.
fn rekeyed(keys: &Keys, row: &SealedVerification) -> Result<SealedVerification, RotationError> {
    let unreadable = |reason: String| RotationError::Unreadable {
        sid: row.sid.to_string(),
        reason,
    };
    let sid = row.sid.as_str();
    let phone = keys
        .open(&row.phone_sealed, PHONE_CONTEXT)
        .map_err(|e| unreadable(e.to_string()))
        .and_then(|b| String::from_utf8(b).map_err(|_| unreadable("number is not text".into())))?;
    let code = keys
        .open(&row.code_sealed, sid.as_bytes())
        .map_err(|e| unreadable(e.to_string()))
        .and_then(|b| String::from_utf8(b).map_err(|_| unreadable("code is not text".into())))
        .map(SecretString::from)?;
    Ok(SealedVerification {
        sid: row.sid.clone(),
        phone_lookup: keys.phone_lookup(&phone).to_vec(),
        phone_sealed: keys.seal(phone.as_bytes(), PHONE_CONTEXT),
        code_digest: keys.code_digest(sid, code.expose_secret()).to_vec(),
        code_sealed: keys.seal(code.expose_secret().as_bytes(), sid.as_bytes()),
    })
}
