"""SQLite's own work in one risk-batch chunk, with no driver in between.

Times the statements the batch runs for a chunk of 10,000 contacts (the
reader's contact fetch and K_A lookup, then the writer's transaction as
committed when no registration was deleted since the K_A read) through
Python's sqlite3 module, on a copy of the batch bench's seeded database.
Prints the median over chunks 2-10 (the first warms the caches).

Getting the copy (docs/batch-profile.md, "Fourth round"):

    ROBERT_BENCH_BACKEND=sqlite target/release/deps/batch-<hash> --bench nomatch 2> err &
    # once err says "uploaded ...": stop it, copy the files, kill it
    kill -STOP <pid>; cp /tmp/robert-store-tests/*bench.db* /tmp/snap/; kill -9 <pid>
    python3 benches/sqlite_chunk.py /tmp/snap/<name>.db

The copy is copied again to /tmp/sqlite_chunk.db (with its WAL) for each
run, so runs start from the same state.
"""

import json
import random
import shutil
import sqlite3
import sys
import time

CHUNK = 10_000


def main(src: str) -> None:
    work = "/tmp/sqlite_chunk.db"
    for ext in ("", "-wal", "-shm"):
        shutil.copy(src + ext, work + ext)
    # The store's settings (crates/robert-store/src/sqlite/mod.rs).
    reader = sqlite3.connect(work, isolation_level=None)
    reader.execute("PRAGMA cache_size=-16384")
    reader.execute("PRAGMA mmap_size=1073741824")
    writer = sqlite3.connect(work, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA synchronous=FULL")
    writer.execute("PRAGMA cache_size=-65536")

    ids = [r[0] for r in reader.execute("SELECT id_a FROM registration")]
    rng = random.Random(1)
    times: dict[str, list[float]] = {}

    def timed(name, f):
        t = time.perf_counter()
        out = f()
        times.setdefault(name, []).append((time.perf_counter() - t) * 1e3)
        return out

    after = 0
    while True:
        rows = timed(
            "reader: fetch 10,000 contacts",
            lambda: reader.execute(
                "SELECT id, received_at, ebid, ecc, hellos, hello_count FROM contact "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, CHUNK),
            ).fetchall(),
        )
        if not rows:
            times["reader: fetch 10,000 contacts"].pop()  # the empty last read
            break
        after = rows[-1][0]
        # One sender per contact, as in the bench.
        senders = sorted(rng.sample(ids, len(rows)))
        timed(
            "reader: deletion count + K_A of 10,000 ID_As",
            lambda: (
                reader.execute("SELECT n FROM registration_deletions").fetchone(),
                reader.execute(
                    "SELECT id_a, key_a FROM registration "
                    "WHERE id_a IN (SELECT value FROM json_each(?))",
                    (json.dumps(senders),),
                ).fetchall(),
            ),
        )
        exposures = sorted(
            (s, 91_800 + i % 14, r[0], 1.5) for i, (s, r) in enumerate(zip(senders, rows))
        )
        t0 = time.perf_counter()
        writer.execute("BEGIN IMMEDIATE")
        timed(
            "writer: deletion count",
            lambda: writer.execute("SELECT n FROM registration_deletions").fetchone(),
        )
        timed(
            "writer: outdated_risk insert",
            lambda: writer.execute(
                "INSERT INTO outdated_risk (id_a) SELECT value FROM json_each(?) "
                "WHERE TRUE ON CONFLICT (id_a) DO NOTHING",
                (json.dumps(senders),),
            ),
        )
        timed(
            "writer: exposure insert (key order)",
            lambda: writer.executemany(
                "INSERT INTO exposure (id_a, epoch, contact_id, score) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                exposures,
            ),
        )
        timed(
            "writer: delete 10,000 contacts",
            lambda: writer.execute(
                "DELETE FROM contact WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([r[0] for r in rows]),),
            ),
        )
        timed("writer: COMMIT (fsync)", lambda: writer.execute("COMMIT"))
        times.setdefault("writer's transaction", []).append((time.perf_counter() - t0) * 1e3)

    for name, v in times.items():
        v = sorted(v[1:] or v)
        print(f"{name:45s} median {v[len(v) // 2]:6.1f} ms  (min {v[0]:.1f}, max {v[-1]:.1f})")


if __name__ == "__main__":
    main(sys.argv[1])
