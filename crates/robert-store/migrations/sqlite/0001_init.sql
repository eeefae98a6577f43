-- ROBERT server store, SQLite (embedded) schema (version 1).
--
-- The same tables and columns as migrations/postgres/0001_init.sql, which
-- documents the sharding layout; booleans are INTEGER 0/1 here.
-- Times are NTP seconds; epochs are 900-second slots from the service start.

-- One row per registered app. id_a (the 5-byte ID_A as a 40-bit big-endian
-- integer) is the rowid: a lookup is one B-tree descent, no secondary index.
CREATE TABLE registration (
    id_a INTEGER PRIMARY KEY,
    key_a BLOB NOT NULL,
    key_a_tuples BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    is_notified INTEGER NOT NULL DEFAULT 0,
    at_risk INTEGER NOT NULL DEFAULT 0,
    notified_for_current_risk INTEGER NOT NULL DEFAULT 0,
    last_status_epoch INTEGER NOT NULL DEFAULT 0,
    latest_risk_epoch INTEGER NOT NULL DEFAULT 0,
    last_contact_timestamp INTEGER NOT NULL DEFAULT 0,
    last_failed_status_epoch INTEGER,
    last_failed_status_message TEXT,
    last_timestamp_drift INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX registration_at_risk ON registration (id_a) WHERE at_risk;

-- outdatedRisk (a row present = true): see the PostgreSQL schema for why it
-- is a table of its own.
CREATE TABLE outdated_risk (
    id_a INTEGER PRIMARY KEY
);

-- exposedEpochs: one row per scored contact, clustered by registration.
CREATE TABLE exposure (
    id_a INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (id_a, epoch, contact_id)
) WITHOUT ROWID;

-- Uploaded contacts waiting for the batch. AUTOINCREMENT: ids are never
-- reused, so (id_a, epoch, contact_id) stays unique across batch runs.
CREATE TABLE contact (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    ebid BLOB NOT NULL,
    ecc BLOB NOT NULL,
    hello_count INTEGER NOT NULL,
    hellos BLOB NOT NULL
);

CREATE TABLE kpi (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE app_config (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE batch_run (
    name TEXT PRIMARY KEY,
    run_at INTEGER NOT NULL,
    seed BLOB NOT NULL,
    phase TEXT NOT NULL
) WITHOUT ROWID;
