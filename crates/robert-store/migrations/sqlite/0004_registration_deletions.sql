-- How many registrations have ever been deleted, counted by a trigger so
-- that no path (an /unregister, an operator's statement) can miss it. The
-- risk batch reads the count with a chunk's K_A and reads it again when it
-- commits the chunk: unchanged, every registration whose key it found still
-- exists and the commit does not look them up again (docs/batch-profile.md).
-- PostgreSQL has no such count: its commit always checks, with row locks.
CREATE TABLE registration_deletions (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    n INTEGER NOT NULL
);
INSERT INTO registration_deletions (id, n) VALUES (0, 0);

CREATE TRIGGER registration_deleted AFTER DELETE ON registration
BEGIN
    UPDATE registration_deletions SET n = n + 1 WHERE id = 0;
END;
