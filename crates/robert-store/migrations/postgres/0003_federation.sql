-- ROBERT server store, PostgreSQL schema (version 3): federation between
-- countries' servers (robert-store `Federation`, docs/federation.md).
-- Small tables, local to the coordinator when the schema is distributed.

-- Contacts of partner countries' phones, moved here from `contact` by the
-- risk batch (in the transaction that deletes them from `contact`), until
-- the partner acknowledges the batch that carries them. Only the contact:
-- no report time, no reporter.
CREATE TABLE federation_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The partner's country code (telephone prefix, 0..255).
    country BIGINT NOT NULL CHECK (country >= 0 AND country < 256),
    -- When the batch moved it here (NTP seconds).
    queued_at BIGINT NOT NULL,
    -- The delivery batch it was assigned to (NULL: not yet assigned). A
    -- batch keeps its id and contacts over every retry until acknowledged.
    batch_id TEXT,
    ebid BYTEA NOT NULL,
    ecc BYTEA NOT NULL,
    hello_count BIGINT NOT NULL,
    -- hello_count packed HELLOs of 13 bytes (see robert_store::codec).
    hellos BYTEA NOT NULL
);
CREATE INDEX federation_outbox_batch ON federation_outbox (country, batch_id, id);

-- Batches received from partners: (origin, batch id) makes a repeated
-- delivery an acknowledged no-op. Rows older than the retention are swept
-- at each reception.
CREATE TABLE federation_inbox (
    origin BIGINT NOT NULL,
    batch_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    -- SHA-256 of the batch's contacts: the same id with other contacts is refused.
    digest BYTEA NOT NULL,
    contacts BIGINT NOT NULL,
    PRIMARY KEY (origin, batch_id)
);
CREATE INDEX federation_inbox_received ON federation_inbox (received_at);
