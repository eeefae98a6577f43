#!/usr/bin/env bash
# Does /status stay flat as the registration table grows? (issue 10 item 5)
#
# One `robert serve` (prefer a release build) on a PostgreSQL database of
# its own, REAL apps registered through the API (their /status requests
# carry real MACs), the table then filled with filler registrations (random
# ID_A, copied wrapped keys) up to each size in SIZES; at each size wrk
# sends /status of the real apps for DURATION seconds (bodies made just
# before, within the 60 s time tolerance). Prints one JSON line per size.
#
# Environment:
#   PG_ADMIN_URL  PostgreSQL admin URL (default postgres://postgres@127.0.0.1:5432/postgres)
#   SIZES         registration counts (default "1000000 10000000")
#   REAL          real registrations (default 2000)
#   DURATION      seconds of wrk per size (default 20); THREADS (2), CONNECTIONS (32)
#   ROBERT_BIN    the binary (default: release, else debug build)
#   KEEP=1        keep the database (robert_scale) afterwards
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SIZES=${SIZES:-"1000000 10000000"}
REAL=${REAL:-2000}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-27100}
DB=robert_scale
work=$(mktemp -d /tmp/robert-status-scale.XXXXXX)

log() { echo "status-scale: $*" >&2; }
command -v wrk >/dev/null || { log "wrk not found (apt-get install wrk)"; exit 2; }
command -v psql >/dev/null || { log "psql not found"; exit 2; }
if [[ -n ${ROBERT_BIN:-} ]]; then
    bin=$ROBERT_BIN
else
    t=${CARGO_TARGET_DIR:-$root/target}
    bin=$t/release/robert
    [[ -x $bin ]] || bin=$t/debug/robert
fi
[[ -x $bin ]] || { log "no robert binary (cargo build --release -p robert)"; exit 2; }
[[ $bin == */debug/* ]] && log "WARNING: debug build ($bin): figures are not representative"

db_url=${PG_ADMIN_URL%/*}/$DB
q() { psql "$db_url" -Atqc "$1"; }
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB" -qc "create database $DB" >/dev/null

pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [[ ${KEEP:-0} == 1 ]] || psql "$PG_ADMIN_URL" -qc "drop database if exists $DB" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

export ROBERT_KEYSTORE_PASSPHRASE=status-scale-only
ROBERT_CAPTCHA__MODE=accept-any ROBERT_PROTOCOL__STATUS_MIN_EPOCH_GAP=0 \
    ROBERT_SERVER__DATABASE_URL=$db_url ROBERT_SERVER__DATA_DIR=$work \
    ROBERT_SERVER__BIND=127.0.0.1:$PORT ROBERT_SERVER__INTERNAL_BIND=127.0.0.1:$((PORT + 1)) \
    ROBERT_CODES__CHECK_TOKEN=false ROBERT_KEYS__ARGON2_MEMORY_KIB=8192 ROBERT_KEYS__ARGON2_ITERATIONS=1 \
    ROBERT_STORE__MAX_CONNECTIONS=32 \
    "$bin" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/actuator/health/liveness" 2>/dev/null && break
    sleep 0.2
done
pk=$("$bin" keys show-public --data-dir "$work" 2>/dev/null | grep -Eo 'MFkw[A-Za-z0-9+/=]+' | head -1)
[[ -n $pk ]] || { log "no public key"; cat "$work/serve.log" >&2; exit 1; }

log "registering $REAL apps through the API"
python3 "$here/status_scale.py" register "http://127.0.0.1:$PORT" "$pk" "$REAL" "$work/apps.jsonl" >/dev/null

cat >"$work/status.lua" <<'EOF'
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local i = 0
init = function(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000) i = math.random(#bodies) end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/api/v6/status", {["Content-Type"] = "application/json"}, bodies[i])
end
EOF

fill_to() { # target count
    local have
    have=$(q "select count(*) from registration")
    (($1 <= have)) && return
    log "filling the table from $have to $1 registrations"
    local t0=$SECONDS
    # Filler rows: random ID_A (40 bits), the wrapped keys of a real row.
    # Batches of 1M keep each transaction short.
    while :; do
        have=$(q "select count(*) from registration")
        (($1 <= have)) && break
        local n=$(($1 - have))
        ((n > 1000000)) && n=1000000
        q "insert into registration (id_a, key_a, key_a_tuples, created_at)
           select (random() * 1099511627775)::bigint, r.key_a, r.key_a_tuples, r.created_at
           from generate_series(1, $n), (select key_a, key_a_tuples, created_at from registration limit 1) r
           on conflict do nothing" >/dev/null
    done
    q "vacuum analyze registration" >/dev/null
    log "filled in $((SECONDS - t0)) s"
}

for size in $SIZES; do
    fill_to "$size"
    python3 "$here/status_scale.py" bodies "$work/apps.jsonl" "$work/bodies.txt"
    # Warm-up, then the measured run.
    BODIES=$work/bodies.txt wrk -t"$THREADS" -c"$CONNECTIONS" -d3s -s "$work/status.lua" "http://127.0.0.1:$PORT" >/dev/null
    python3 "$here/status_scale.py" bodies "$work/apps.jsonl" "$work/bodies.txt"
    BODIES=$work/bodies.txt wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/status.lua" \
        "http://127.0.0.1:$PORT" >"$work/wrk.txt"
    rows=$(q "select count(*) from registration")
    size_mb=$(q "select pg_total_relation_size('registration') / 1000000")
    python3 - "$work/wrk.txt" "$rows" "$size_mb" "$bin" <<'EOF'
import json, re, sys
t = open(sys.argv[1]).read()
def lat(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", t, re.M)
    v, u = float(m.group(1)), m.group(2)
    return round(v / 1000 if u == "us" else v * 1000 if u == "s" else v, 2)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errors = re.search(r"Socket errors: (.*)", t)
print(json.dumps({"registrations": int(sys.argv[2]), "table_mb": int(sys.argv[3]), "status_per_s": rps,
                  "p50_ms": lat(50), "p90_ms": lat(90), "p99_ms": lat(99),
                  "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                  "socket_errors": errors.group(1) if errors else None,
                  "release_build": "/release/" in sys.argv[4]}))
EOF
done
