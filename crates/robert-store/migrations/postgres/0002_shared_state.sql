-- ROBERT server store, PostgreSQL schema (version 2): the state several
-- `robert serve` nodes on one database share (robert-store `SharedState`).
-- Small tables, kept local to the coordinator when sharded.

-- Outstanding built-in captcha challenges. `sealed` is the challenge's
-- random seed encrypted under a key derived from the KEK (AES-256-GCM, the
-- id as associated data): the answer is never stored in clear. `client` is
-- a keyed hash of the client's address, never the address.
CREATE TABLE captcha (
    id TEXT PRIMARY KEY,
    client BYTEA NOT NULL,
    kind BIGINT NOT NULL,
    sealed BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX captcha_client ON captcha (client, expires_at);
CREATE INDEX captcha_expiry ON captcha (expires_at);

-- Rate-limit state (GCRA): per bucket and keyed hash of a client, the
-- theoretical arrival time of its next request (Unix milliseconds). A row
-- whose time has passed is the same as no row and may be swept.
CREATE TABLE rate_limit (
    bucket TEXT NOT NULL,
    client BYTEA NOT NULL,
    tat_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, client)
);
CREATE INDEX rate_limit_tat ON rate_limit (tat_ms);

-- Periodic tasks that one node only may run per turn (the risk batch per
-- `--batch-every` period, key rotation per day): the last turn claimed, by
-- whom, until when the claim holds if unfinished, and whether it finished.
CREATE TABLE task_turn (
    task TEXT PRIMARY KEY,
    turn BIGINT NOT NULL,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    done BOOLEAN NOT NULL
);
