-- The /v2 face (Twilio Verify's API). `twilio_identity`: values generated once and shared by
-- every process on this database (the account SID and the default service SID when they are
-- not configured). `verify_services`: Verify services and the settings verifyd implements;
-- the default service is a row like any other. Times are milliseconds since the Unix epoch.
CREATE TABLE twilio_identity (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

CREATE TABLE verify_services (
    sid                           TEXT    PRIMARY KEY NOT NULL,
    friendly_name                 TEXT    NOT NULL,
    code_length                   INTEGER NOT NULL,
    lookup_enabled                INTEGER NOT NULL DEFAULT 0,
    skip_sms_to_landlines         INTEGER NOT NULL DEFAULT 0,
    psd2_enabled                  INTEGER NOT NULL DEFAULT 0,
    do_not_share_warning_enabled  INTEGER NOT NULL DEFAULT 0,
    custom_code_enabled           INTEGER NOT NULL DEFAULT 0,
    default_template_sid          TEXT,
    created_at                    INTEGER NOT NULL,
    updated_at                    INTEGER NOT NULL
);
