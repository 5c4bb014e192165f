-- The /v2 face (Twilio Verify's API); see migrations/sqlite for the same schema in SQLite.
-- `twilio_identity`: values generated once and shared by every replica (the account SID and the
-- default service SID when they are not configured). `verify_services`: Verify services and the
-- settings verifyd implements; the default service is a row like any other.
CREATE TABLE twilio_identity (
    name   text PRIMARY KEY NOT NULL,
    value  text NOT NULL
);

CREATE TABLE verify_services (
    sid                           text     PRIMARY KEY NOT NULL,
    friendly_name                 text     NOT NULL,
    code_length                   smallint NOT NULL,
    lookup_enabled                boolean  NOT NULL DEFAULT false,
    skip_sms_to_landlines         boolean  NOT NULL DEFAULT false,
    psd2_enabled                  boolean  NOT NULL DEFAULT false,
    do_not_share_warning_enabled  boolean  NOT NULL DEFAULT false,
    custom_code_enabled           boolean  NOT NULL DEFAULT false,
    default_template_sid          text,
    created_at                    bigint   NOT NULL,
    updated_at                    bigint   NOT NULL
);
