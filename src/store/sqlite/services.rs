//! [`ServiceStore`] on SQLite: each call is one job on the store's thread (writes inside its
//! batch's transaction, like every other write).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::worker::Access;
use super::{SqliteStore, db_error};
use crate::domain::{Timestamp, VerificationSid};
use crate::store::StoreError;
use crate::store::services::{ServiceRecord, ServiceStore};

const COLUMNS: &str = "sid, friendly_name, code_length, lookup_enabled, skip_sms_to_landlines, \
     psd2_enabled, do_not_share_warning_enabled, custom_code_enabled, default_template_sid, \
     created_at, updated_at";

fn service_from_row(row: &Row<'_>) -> rusqlite::Result<ServiceRecord> {
    Ok(ServiceRecord {
        sid: row.get(0)?,
        friendly_name: row.get(1)?,
        code_length: u8::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        lookup_enabled: row.get(3)?,
        skip_sms_to_landlines: row.get(4)?,
        psd2_enabled: row.get(5)?,
        do_not_share_warning_enabled: row.get(6)?,
        custom_code_enabled: row.get(7)?,
        default_template_sid: row.get(8)?,
        created: Timestamp::from_millis(row.get(9)?),
        updated: Timestamp::from_millis(row.get(10)?),
    })
}

#[async_trait]
impl ServiceStore for SqliteStore {
    async fn identity(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached(
                    "INSERT INTO twilio_identity (name, value) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![name, candidate]))
                .map_err(db_error)?;
                c.query_row(
                    "SELECT value FROM twilio_identity WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(db_error)
            })
            .await
    }

    async fn insert_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let s = service.clone();
        self.worker
            .call(Access::Write, move |c| {
                let n = c
                    .prepare_cached(&format!(
                        "INSERT INTO verify_services ({COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (sid) DO NOTHING"
                    ))
                    .and_then(|mut st| {
                        st.execute(params![
                            s.sid,
                            s.friendly_name,
                            i64::from(s.code_length),
                            s.lookup_enabled,
                            s.skip_sms_to_landlines,
                            s.psd2_enabled,
                            s.do_not_share_warning_enabled,
                            s.custom_code_enabled,
                            s.default_template_sid,
                            s.created.as_millis(),
                            s.updated.as_millis(),
                        ])
                    })
                    .map_err(db_error)?;
                Ok(n == 1)
            })
            .await
    }

    async fn service(&self, sid: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let sid = sid.to_owned();
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM verify_services WHERE sid = ?1"
                ))
                .and_then(|mut st| st.query_row([&sid], service_from_row).optional())
                .map_err(db_error)
            })
            .await
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let s = service.clone();
        self.worker
            .call(Access::Write, move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE verify_services SET friendly_name = ?2, code_length = ?3, \
                         lookup_enabled = ?4, skip_sms_to_landlines = ?5, psd2_enabled = ?6, \
                         do_not_share_warning_enabled = ?7, custom_code_enabled = ?8, \
                         default_template_sid = ?9, updated_at = ?10 WHERE sid = ?1",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            s.sid,
                            s.friendly_name,
                            i64::from(s.code_length),
                            s.lookup_enabled,
                            s.skip_sms_to_landlines,
                            s.psd2_enabled,
                            s.do_not_share_warning_enabled,
                            s.custom_code_enabled,
                            s.default_template_sid,
                            s.updated.as_millis(),
                        ])
                    })
                    .map_err(db_error)?;
                Ok(n == 1)
            })
            .await
    }

    async fn delete_service(&self, sid: &str) -> Result<bool, StoreError> {
        let sid = sid.to_owned();
        self.worker
            .call(Access::Write, move |c| {
                let n = c
                    .prepare_cached("DELETE FROM verify_services WHERE sid = ?1")
                    .and_then(|mut st| st.execute([&sid]))
                    .map_err(db_error)?;
                Ok(n == 1)
            })
            .await
    }

    async fn services(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM verify_services WHERE sid > ?1 ORDER BY sid LIMIT ?2"
                    ))
                    .map_err(db_error)?;
                st.query_map(params![after, i64::from(limit)], service_from_row)
                    .and_then(Iterator::collect)
                    .map_err(db_error)
            })
            .await
    }

    async fn verification_owner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<Option<String>>, StoreError> {
        let sid = sid.clone();
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached("SELECT owner FROM verifications WHERE sid = ?1")
                    .and_then(|mut st| {
                        st.query_row([sid.as_str()], |r| r.get::<_, Option<String>>(0))
                            .optional()
                    })
                    .map_err(db_error)
            })
            .await
    }
}
