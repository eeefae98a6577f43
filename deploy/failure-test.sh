#!/usr/bin/env bash
# Failure tests of the deployment topology (issue 10 item 3), on 127.0.0.1:
#
#   1. captcha      cluster with the built-in captcha: a challenge made on
#                   node 1 is fetched on nodes 2 and 3 (same bytes), answered
#                   on node 3, refused when replayed on node 1
#   2. node-kill    steady register/status/report load through HAProxy;
#                   kill -9 one node: no acknowledged write lost, only the
#                   requests in flight on that node fail (and any HAProxy
#                   sent to it in the ~1 s before marking it down)
#   3. db-failover  same load; crash the PostgreSQL primary (immediate stop)
#                   and promote the standby: the nodes reconnect on their
#                   own; switch time, failed requests and the write gap are
#                   measured; no acknowledged write lost (synchronous standby)
#   4. backup       pg_basebackup of the (new) primary + WAL archive; more
#                   writes; restore into a fresh data dir from the base
#                   backup and the archive; the restored database has every
#                   row (timed)
#
# Each run brings the cluster up and down (deploy/local-cluster.sh); RUNS
# repeats 2-4. One JSON line per scenario goes to stdout and to
# $OUT (default <state dir>/failure-test.jsonl). Exit 1 if any check fails.
#
# Environment: RUNS (default 1), WORKERS/WARMUP/AFTER (failure_test.py),
# ROBERT_CLUSTER_DIR, ROBERT_CLUSTER_PORT, ROBERT_BIN (local-cluster.sh),
# REQUIRE_CAPTCHA_SOLVED=1 (fail if the audio solver did not solve it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-1}
export ROBERT_CLUSTER_DIR=${ROBERT_CLUSTER_DIR:-/tmp/robert-cluster}
OUT=${OUT:-$ROBERT_CLUSTER_DIR.failure-test.jsonl}
cluster=$here/local-cluster.sh
fail=0
: >"$OUT"

log() { echo "failure-test: $*" >&2; }
record() { echo "$1" | tee -a "$OUT"; }

cleanup() { "$cluster" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 1' INT TERM

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

scenario() { # json-file name
    local line
    if line=$(python3 "$here/failure_test.py" "$1" "$2"); then
        record "$line"
    else
        record "${line:-{\"scenario\":\"$2\",\"pass\":false}}"
        fail=1
    fi
}

backup_restore() { # cluster json file
    local state=$ROBERT_CLUSTER_DIR db port restored=$ROBERT_CLUSTER_DIR/pg/restored
    db=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["pg_standby"].split(":")[1])' "$1")
    port=$((db + 1))
    local q=("$pgbin/psql" -h 127.0.0.1 -p "$db" -U postgres -d robert -Atqc)
    local t0 t1 n_base n_final n_restored
    t0=$(date +%s.%N)
    as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$db" -U postgres -D "$state/pg/backup" -X none -c fast
    t1=$(date +%s.%N)
    n_base=$(as_pg "${q[@]}" 'select count(*) from registration')
    # Writes after the base backup: only the archived WAL brings them back.
    python3 - "$1" <<'EOF'
import json, sys, os
sys.path.insert(0, os.environ["HERE"])
import robert_api as api
c = json.loads(open(sys.argv[1]).read().splitlines()[-1])
h = api.Http(c["balancer"])
for i in range(50):
    h.forwarded_for = f"10.9.{i}.1"
    s, reg, d = api.register(h, c["server_public_key"])
    assert s == 201, (s, d)
EOF
    n_final=$(as_pg "${q[@]}" 'select count(*) from registration')
    local seg
    seg=$(as_pg "${q[@]}" 'select pg_walfile_name(pg_switch_wal() - 1)')
    # Wait until that segment is archived.
    local deadline=$((SECONDS + 30))
    until [[ $(as_pg "${q[@]}" "select coalesce(last_archived_wal >= '$seg', false) from pg_stat_archiver") == t ]]; do
        ((SECONDS < deadline)) || { log "WAL not archived in 30 s"; return 1; }
        sleep 0.2
    done
    local r0 r1
    r0=$(date +%s.%N)
    cp -a "$state/pg/backup" "$restored"
    cat >>"$restored/postgresql.auto.conf" <<EOF
port = $port
synchronous_standby_names = ''
archive_mode = off
restore_command = 'cp $state/pg/archive/%f %p'
recovery_target_timeline = 'latest'
EOF
    as_pg touch "$restored/recovery.signal"
    as_pg "$pgbin/pg_ctl" -D "$restored" -l "$state/pg/restored.log" -w -t 120 start >/dev/null
    deadline=$((SECONDS + 120))
    until [[ $(as_pg "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -d robert -Atqc 'select pg_is_in_recovery()' 2>/dev/null) == f ]]; do
        ((SECONDS < deadline)) || { log "restore did not finish recovery"; break; }
        sleep 0.1
    done
    n_restored=$(as_pg "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -d robert -Atqc 'select count(*) from registration')
    r1=$(date +%s.%N)
    as_pg "$pgbin/pg_ctl" -D "$restored" -m fast -w stop >/dev/null
    local ok=false
    [[ $n_restored == "$n_final" && $n_final -gt $n_base ]] && ok=true
    [[ $ok == true ]] || fail=1
    record "$(printf '{"scenario":"backup-restore","pass":%s,"basebackup_s":%.2f,"rows_at_backup":%s,"rows_after_more_writes":%s,"rows_restored":%s,"restore_s":%.2f}' \
        "$ok" "$(echo "$t1 - $t0" | bc)" "$n_base" "$n_final" "$n_restored" "$(echo "$r1 - $r0" | bc)")"
}

export HERE=$here
json=$ROBERT_CLUSTER_DIR.json

log "1. captcha across nodes (built-in captcha)"
ROBERT_CAPTCHA__MODE=builtin "$cluster" up >"$json"
scenario "$json" captcha
"$cluster" down

for run in $(seq 1 "$RUNS"); do
    log "run $run/$RUNS: load scenarios (captcha.mode = accept-any: the load driver cannot read images)"
    # Status every request (no minimum gap), batch out of the way (it would
    # consume the reported contacts the check looks for).
    ROBERT_CAPTCHA__MODE=accept-any ROBERT_PROTOCOL__STATUS_MIN_EPOCH_GAP=0 BATCH_EVERY=1d \
        "$cluster" up >"$json"
    log "2. node kill"
    scenario "$json" node-kill
    log "3. database failover"
    scenario "$json" db-failover
    log "4. backup and restore"
    backup_restore "$json" || fail=1
    "$cluster" down
done

if ((fail)); then
    log "FAILED (details in $OUT)"
    exit 1
fi
log "all scenarios passed ($OUT)"
