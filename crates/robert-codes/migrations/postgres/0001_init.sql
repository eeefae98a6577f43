-- Submission codes, stored only as keyed hashes (HMAC-SHA256 with a pepper).
-- Times are Unix seconds (UTC).
CREATE TABLE submission_code (
    code_hash      BYTEA   PRIMARY KEY,
    kind           BIGINT  NOT NULL,
    available_from BIGINT  NOT NULL,
    valid_until    BIGINT  NOT NULL,
    generated_at   BIGINT  NOT NULL,
    used_at        BIGINT,
    lot_id         BIGINT
);
CREATE INDEX submission_code_kind_available ON submission_code (kind, available_from);
CREATE INDEX submission_code_valid_until ON submission_code (valid_until);

CREATE TABLE jwt_used (
    jti_hash   BYTEA  PRIMARY KEY,
    used_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE lot (
    id            BIGSERIAL PRIMARY KEY,
    created_at    BIGINT  NOT NULL,
    first_day     TEXT    NOT NULL,
    last_day      TEXT    NOT NULL,
    codes_per_day BIGINT  NOT NULL,
    archive_name  TEXT    NOT NULL
);

CREATE TABLE file_sequence (
    day      TEXT   PRIMARY KEY,
    sequence BIGINT NOT NULL
);

CREATE TABLE kpi_daily (
    day     BIGINT  NOT NULL,
    kind    BIGINT  NOT NULL,
    issued  BIGINT  NOT NULL DEFAULT 0,
    used    BIGINT  NOT NULL DEFAULT 0,
    expired BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind)
);

CREATE TABLE quota_usage (
    subject BYTEA  NOT NULL,
    day     BIGINT NOT NULL,
    used    BIGINT NOT NULL,
    PRIMARY KEY (subject, day)
);

CREATE TABLE doctor (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL,
    daily_quota   BIGINT,
    failed_logins BIGINT  NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE portal_session (
    token_hash BYTEA  PRIMARY KEY,
    doctor_id  BIGINT NOT NULL,
    csrf_token TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT  NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE job_lock (
    name         TEXT   PRIMARY KEY,
    holder       TEXT   NOT NULL,
    locked_until BIGINT NOT NULL
);
