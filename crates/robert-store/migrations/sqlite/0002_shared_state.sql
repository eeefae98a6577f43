-- ROBERT server store, SQLite schema (version 2): the state several server
-- processes on one database share (robert-store `SharedState`); see the
-- PostgreSQL migration of the same number for the meaning of each column.

CREATE TABLE captcha (
    id TEXT PRIMARY KEY,
    client BLOB NOT NULL,
    kind INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX captcha_client ON captcha (client, expires_at);
CREATE INDEX captcha_expiry ON captcha (expires_at);

CREATE TABLE rate_limit (
    bucket TEXT NOT NULL,
    client BLOB NOT NULL,
    tat_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, client)
) WITHOUT ROWID;
CREATE INDEX rate_limit_tat ON rate_limit (tat_ms);

CREATE TABLE task_turn (
    task TEXT PRIMARY KEY,
    turn INTEGER NOT NULL,
    holder TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    done INTEGER NOT NULL
) WITHOUT ROWID;
