-- Two-phase use of a code (ROBERT's /report): a claim holds a code for one
-- report until `claimed_until` (Unix seconds); the report's server confirms
-- it (the code is then used) or releases it. An expired claim no longer
-- holds the code. `claim_key` identifies the report (a hash of its body), so
-- a retried report can take its own claim again.
ALTER TABLE submission_code ADD COLUMN claim_key BLOB;
ALTER TABLE submission_code ADD COLUMN claimed_until BIGINT;
-- A JWT row with `claimed_until` set is claimed, not yet used.
ALTER TABLE jwt_used ADD COLUMN claim_key BLOB;
ALTER TABLE jwt_used ADD COLUMN claimed_until BIGINT;
