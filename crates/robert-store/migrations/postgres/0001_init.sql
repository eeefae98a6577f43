-- ROBERT server store, PostgreSQL schema (version 1).
--
-- Scale-out design: every registration query is keyed by id_a and no query
-- joins two different registrations, so the tables below can be sharded by
-- id_a without changing any statement. With Citus, the intended layout is:
--
--   SELECT create_distributed_table('registration', 'id_a');
--   SELECT create_distributed_table('exposure', 'id_a', colocate_with => 'registration');
--   SELECT create_distributed_table('outdated_risk', 'id_a', colocate_with => 'registration');
--   SELECT create_distributed_table('contact', 'id');   -- or keep it local to the coordinator
--   kpi, app_config, batch_run: small tables, kept local to the coordinator
--
-- The only cross-table statements (batch risk evaluation, KPI counts, the
-- outdatedRisk flag) join registration with exposure or outdated_risk on
-- id_a, i.e. within one shard group.
-- Times are NTP seconds (seconds since 1900-01-01 UTC); epochs are 900-second
-- slots from the service start. Both fit BIGINT.

-- One row per registered app. Distribution column: id_a.
CREATE TABLE registration (
    -- ID_A (5 bytes) as a 40-bit big-endian integer.
    id_a BIGINT PRIMARY KEY CHECK (id_a >= 0 AND id_a < 1099511627776),
    -- K_A and K_A_Tuples wrapped under the KEK: IV(12) || AES-256-GCM(32) || tag(16).
    key_a BYTEA NOT NULL CHECK (octet_length(key_a) = 60),
    key_a_tuples BYTEA NOT NULL CHECK (octet_length(key_a_tuples) = 60),
    created_at BIGINT NOT NULL,
    is_notified BOOLEAN NOT NULL DEFAULT FALSE,
    at_risk BOOLEAN NOT NULL DEFAULT FALSE,
    notified_for_current_risk BOOLEAN NOT NULL DEFAULT FALSE,
    last_status_epoch BIGINT NOT NULL DEFAULT 0,
    latest_risk_epoch BIGINT NOT NULL DEFAULT 0,
    last_contact_timestamp BIGINT NOT NULL DEFAULT 0,
    last_failed_status_epoch BIGINT,
    last_failed_status_message TEXT,
    last_timestamp_drift BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 85); -- room for HOT updates: /status never touches an indexed column

-- The risk reset's selection: a small subset.
CREATE INDEX registration_at_risk ON registration (id_a) WHERE at_risk;

-- outdatedRisk: registrations with new scores waiting for the risk
-- evaluation (a row present = true). A table of its own rather than a column
-- so that scoring a chunk does not rewrite thousands of registration rows
-- (which would be non-HOT updates here and dirty one page per row in SQLite).
-- Distribution column: id_a (co-located with registration).
CREATE TABLE outdated_risk (
    id_a BIGINT PRIMARY KEY
);

-- exposedEpochs: one row per scored contact. Distribution column: id_a
-- (co-located with registration).
CREATE TABLE exposure (
    id_a BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    -- The contact the score came from: keeps the insertion order and makes a
    -- second scoring of the same contact a no-op.
    contact_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (id_a, epoch, contact_id)
);

-- Uploaded contacts waiting for the batch. Distribution column: id (the
-- sender's id_a is unknown until the batch decrypts the EBID).
CREATE TABLE contact (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    ebid BYTEA NOT NULL,
    ecc BYTEA NOT NULL,
    hello_count BIGINT NOT NULL,
    -- hello_count packed HELLOs of 13 bytes (see robert_store::codec).
    hellos BYTEA NOT NULL
);

-- Named counters (server-api.md §6.6). Local to the coordinator.
CREATE TABLE kpi (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The `config` list returned to apps: name -> JSON text. Local to the coordinator.
CREATE TABLE app_config (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Progress of the last batch run (resumption after a crash). Local to the coordinator.
CREATE TABLE batch_run (
    name TEXT PRIMARY KEY,
    run_at BIGINT NOT NULL,
    seed BYTEA NOT NULL,
    phase TEXT NOT NULL
);
