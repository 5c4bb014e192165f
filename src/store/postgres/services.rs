//! [`ServiceStore`] on PostgreSQL: one statement per call, within the store's deadline. Every
//! replica reads the same rows, so a service created or changed on one is in force on all.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, db_error};
use crate::domain::{Timestamp, VerificationSid};
use crate::store::StoreError;
use crate::store::services::{ServiceRecord, ServiceStore};

macro_rules! service_columns {
    () => {
        "sid, friendly_name, code_length, lookup_enabled, skip_sms_to_landlines, psd2_enabled, \
         do_not_share_warning_enabled, custom_code_enabled, default_template_sid, created_at, \
         updated_at"
    };
}

fn service_from_row(row: &PgRow) -> Result<ServiceRecord, StoreError> {
    Ok(ServiceRecord {
        sid: row.try_get(0).map_err(db_error)?,
        friendly_name: row.try_get(1).map_err(db_error)?,
        code_length: u8::try_from(row.try_get::<i16, _>(2).map_err(db_error)?).unwrap_or(0),
        lookup_enabled: row.try_get(3).map_err(db_error)?,
        skip_sms_to_landlines: row.try_get(4).map_err(db_error)?,
        psd2_enabled: row.try_get(5).map_err(db_error)?,
        do_not_share_warning_enabled: row.try_get(6).map_err(db_error)?,
        custom_code_enabled: row.try_get(7).map_err(db_error)?,
        default_template_sid: row.try_get(8).map_err(db_error)?,
        created: Timestamp::from_millis(row.try_get(9).map_err(db_error)?),
        updated: Timestamp::from_millis(row.try_get(10).map_err(db_error)?),
    })
}

#[async_trait]
impl ServiceStore for PostgresStore {
    async fn identity(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO twilio_identity (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            sqlx::query_scalar("SELECT value FROM twilio_identity WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)
        })
        .await
    }

    async fn insert_service(&self, s: &ServiceRecord) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(concat!(
                "INSERT INTO verify_services (",
                service_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (sid) DO NOTHING"
            ))
            .bind(&s.sid)
            .bind(&s.friendly_name)
            .bind(i16::from(s.code_length))
            .bind(s.lookup_enabled)
            .bind(s.skip_sms_to_landlines)
            .bind(s.psd2_enabled)
            .bind(s.do_not_share_warning_enabled)
            .bind(s.custom_code_enabled)
            .bind(s.default_template_sid.as_deref())
            .bind(s.created.as_millis())
            .bind(s.updated.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn service(&self, sid: &str) -> Result<Option<ServiceRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                service_columns!(),
                " FROM verify_services WHERE sid = $1"
            ))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(service_from_row).transpose()
        })
        .await
    }

    async fn update_service(&self, s: &ServiceRecord) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE verify_services SET friendly_name = $2, code_length = $3, \
                 lookup_enabled = $4, skip_sms_to_landlines = $5, psd2_enabled = $6, \
                 do_not_share_warning_enabled = $7, custom_code_enabled = $8, \
                 default_template_sid = $9, updated_at = $10 WHERE sid = $1",
            )
            .bind(&s.sid)
            .bind(&s.friendly_name)
            .bind(i16::from(s.code_length))
            .bind(s.lookup_enabled)
            .bind(s.skip_sms_to_landlines)
            .bind(s.psd2_enabled)
            .bind(s.do_not_share_warning_enabled)
            .bind(s.custom_code_enabled)
            .bind(s.default_template_sid.as_deref())
            .bind(s.updated.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn delete_service(&self, sid: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM verify_services WHERE sid = $1")
                .bind(sid)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn services(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                service_columns!(),
                " FROM verify_services WHERE sid COLLATE \"C\" > $1 ORDER BY sid COLLATE \"C\" LIMIT $2"
            ))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(service_from_row).collect()
        })
        .await
    }

    async fn verification_owner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.bounded(async {
            sqlx::query("SELECT owner FROM verifications WHERE sid = $1")
                .bind(sid.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?
                .map(|r| r.try_get::<Option<String>, _>(0).map_err(db_error))
                .transpose()
        })
        .await
    }
}
