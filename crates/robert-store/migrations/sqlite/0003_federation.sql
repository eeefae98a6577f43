-- ROBERT server store, SQLite schema (version 3): federation between
-- countries' servers (robert-store `Federation`); see the PostgreSQL
-- migration of the same number for the meaning of each column.

CREATE TABLE federation_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    batch_id TEXT,
    ebid BLOB NOT NULL,
    ecc BLOB NOT NULL,
    hello_count INTEGER NOT NULL,
    hellos BLOB NOT NULL
);
CREATE INDEX federation_outbox_batch ON federation_outbox (country, batch_id, id);

CREATE TABLE federation_inbox (
    origin INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    digest BLOB NOT NULL,
    contacts INTEGER NOT NULL,
    PRIMARY KEY (origin, batch_id)
) WITHOUT ROWID;
CREATE INDEX federation_inbox_received ON federation_inbox (received_at);
