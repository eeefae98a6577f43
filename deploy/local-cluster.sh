#!/usr/bin/env bash
# The production topology of docs/deployment.md on one machine, on
# 127.0.0.1 only:
#
#   HAProxy (API balancer + database front)
#     ├─ robert serve × 3 (node1..node3, stateless, --batch-every)
#     ├─ robert codes serve (submission-code service)
#     └─ PostgreSQL primary ──streaming (synchronous)──▶ PostgreSQL standby
#   SoftHSM2 token holding the keys (KEK and registration key non-extractable)
#
#   deploy/local-cluster.sh up      start everything from a clean state dir;
#                                   prints one JSON line (URLs, pids, key)
#   deploy/local-cluster.sh down    stop exactly what `up` started (pid files
#                                   under the state dir), keep the logs
#   deploy/local-cluster.sh status  the JSON line again, with what is alive
#
# Environment:
#   ROBERT_CLUSTER_DIR   state dir (default /tmp/robert-cluster); `up` wipes it
#   ROBERT_CLUSTER_PORT  first of the ports used (default 27000):
#                        +0 balancer, +1 HAProxy stats, +2 database front,
#                        +10/+11 PostgreSQL primary/standby, +21..23 nodes,
#                        +31..33 their internal listeners, +40/+41 code service
#   ROBERT_BIN           the robert binary (default: the release build, else
#                        the debug build, of $CARGO_TARGET_DIR or ./target)
#   BATCH_EVERY          risk batch interval on every node (default 15m; one
#                        node runs each turn)
#   SYNC_STANDBY         1 (default): commits wait for the standby (no
#                        acknowledged write is lost at failover); 0: async
#   Any ROBERT_<SECTION>__<KEY> variable reaches the nodes (e.g.
#   ROBERT_CAPTCHA__MODE=accept-any for load tests).
#
# Needs: PostgreSQL server binaries (Debian postgresql), haproxy, softhsm2.
# Run as root, PostgreSQL runs as the `postgres` user.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
STATE=${ROBERT_CLUSTER_DIR:-/tmp/robert-cluster}
BASE=${ROBERT_CLUSTER_PORT:-27000}
BATCH_EVERY=${BATCH_EVERY:-15m}
SYNC_STANDBY=${SYNC_STANDBY:-1}
H=127.0.0.1

P_LB=$BASE
P_STATS=$((BASE + 1))
P_DB=$((BASE + 2))
P_PRIMARY=$((BASE + 10))
P_STANDBY=$((BASE + 11))
P_CODES=$((BASE + 40))
P_CODES_INT=$((BASE + 41))
node_port() { echo $((BASE + 20 + $1)); }
node_int_port() { echo $((BASE + 30 + $1)); }

PIN=1234
SO_PIN=12345678
TOKEN=robert

die() { echo "local-cluster: $*" >&2; exit 1; }
log() { echo "local-cluster: $*" >&2; }

pgbin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [[ -n $d && -x $d/postgres ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    echo "$d"
}

find_robert() {
    if [[ -n ${ROBERT_BIN:-} ]]; then
        [[ -x $ROBERT_BIN ]] || die "ROBERT_BIN=$ROBERT_BIN is not executable"
        echo "$ROBERT_BIN"
        return
    fi
    local t=${CARGO_TARGET_DIR:-$root/target}
    for b in "$t/release/robert" "$t/debug/robert"; do
        [[ -x $b ]] && { echo "$b"; return; }
    done
    die "no robert binary: cargo build --release -p robert, or set ROBERT_BIN"
}

# Runs a PostgreSQL tool as the postgres user when we are root.
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The pid in a pid file, if that process is alive and runs what we started.
pid_of() {
    local f=$STATE/pids/$1.pid pid
    [[ -f $f ]] || return 1
    pid=$(head -1 "$f")
    alive "$pid" || return 1
    # Guard against pid reuse: the process must run the recorded command.
    if [[ -f $STATE/pids/$1.cmd ]]; then
        local want
        want=$(cat "$STATE/pids/$1.cmd")
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want" || return 1
    fi
    echo "$pid"
}

pg_pid() { # data dir → postmaster pid
    [[ -f $1/postmaster.pid ]] || return 1
    local pid
    pid=$(head -1 "$1/postmaster.pid")
    alive "$pid" && echo "$pid"
}

wait_http() { # url timeout_s
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

wait_node() { # n timeout_s: ready, or false as soon as the process is gone
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        curl -fsS -o /dev/null --max-time 1 "http://$H:$(node_port "$1")/actuator/health/readiness" 2>/dev/null && return 0
        pid_of "node$1" >/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# Starts a background process in its own session; records pid and command.
spawn() { # name logfile cmd...
    local name=$1 logf=$2
    shift 2
    setsid "$@" >>"$logf" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
    echo "$1 ${2:-}" >"$STATE/pids/$name.cmd"
}

json_status() {
    local robert pk pids="" n
    pk=$(cat "$STATE/server-public-key" 2>/dev/null || true)
    add() { pids+="${pids:+,}\"$1\":${2:-null}"; }
    add pg_primary "$(pg_pid "$STATE/pg/primary" || true)"
    add pg_standby "$(pg_pid "$STATE/pg/standby" || true)"
    add haproxy "$(pid_of haproxy || true)"
    add codes "$(pid_of codes || true)"
    for n in 1 2 3; do add "node$n" "$(pid_of "node$n" || true)"; done
    local nodes="" ints=""
    for n in 1 2 3; do
        nodes+="${nodes:+,}\"http://$H:$(node_port $n)\""
        ints+="${ints:+,}\"http://$H:$(node_int_port $n)\""
    done
    printf '{"balancer":"http://%s:%s","nodes":[%s],"internal":[%s],"codes":"http://%s:%s","codes_internal":"http://%s:%s","database":"postgres://postgres@%s:%s/robert","pg_primary":"%s:%s","pg_standby":"%s:%s","haproxy_stats":"http://%s:%s/stats","server_public_key":"%s","codes_api_key":"%s","state_dir":"%s","pids":{%s}}\n' \
        "$H" "$P_LB" "$nodes" "$ints" "$H" "$P_CODES" "$H" "$P_CODES_INT" "$H" "$P_DB" \
        "$H" "$P_PRIMARY" "$H" "$P_STANDBY" "$H" "$P_STATS" "$pk" \
        "$(cat "$STATE/codes-api-key" 2>/dev/null || true)" "$STATE" "$pids"
}

anything_running() {
    [[ -d $STATE ]] || return 1
    pg_pid "$STATE/pg/primary" >/dev/null && return 0
    pg_pid "$STATE/pg/standby" >/dev/null && return 0
    local f
    for f in "$STATE"/pids/*.pid; do
        [[ -e $f ]] || continue
        pid_of "$(basename "$f" .pid)" >/dev/null && return 0
    done
    return 1
}

haproxy_env() {
    export ROBERT_LB_BIND=$H:$P_LB ROBERT_LB_STATS=$H:$P_STATS ROBERT_PG_BIND=$H:$P_DB
    export ROBERT_PG_PRIMARY=$H:$P_PRIMARY ROBERT_PG_STANDBY=$H:$P_STANDBY
    export ROBERT_NODE1=$H:$(node_port 1) ROBERT_NODE2=$H:$(node_port 2) ROBERT_NODE3=$H:$(node_port 3)
    export ROBERT_HAPROXY_PIDFILE=$STATE/pids/haproxy.pid
}

pg_conf() { # data dir, port
    cat >>"$1/postgresql.conf" <<EOF

# deploy/local-cluster.sh
listen_addresses = '$H'
port = $2
unix_socket_directories = '$STATE/pg/sock'
max_connections = 200
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 5
wal_keep_size = 512MB
hot_standby = on
archive_mode = on
archive_command = 'test ! -f $STATE/pg/archive/%f && cp %p $STATE/pg/archive/%f'
archive_timeout = 60
EOF
}

up() {
    anything_running && die "a cluster is running in $STATE: run '$0 down' first"
    local robert pg
    robert=$(find_robert)
    pg=$(pgbin)
    for t in haproxy softhsm2-util curl; do
        command -v "$t" >/dev/null || die "$t not found (apt-get install haproxy softhsm2 curl)"
    done
    [[ -f /usr/lib/softhsm/libsofthsm2.so ]] || die "no /usr/lib/softhsm/libsofthsm2.so (apt-get install softhsm2)"
    local t0=$SECONDS deadline
    # A failure half way stops what was started.
    trap 'log "up failed: stopping what it started"; down' EXIT

    rm -rf "$STATE"
    mkdir -p "$STATE"/{pids,logs,pg/sock,pg/archive,softhsm/tokens,data}
    chmod 755 "$STATE"
    [[ $(id -u) == 0 ]] && chown -R postgres: "$STATE/pg"

    # 1. PostgreSQL primary, the databases, then the standby cloned from it.
    log "PostgreSQL primary on $P_PRIMARY"
    as_pg "$pg/initdb" -D "$STATE/pg/primary" -U postgres --auth=trust -E UTF8 >"$STATE/logs/initdb.log" 2>&1 ||
        die "initdb failed: $STATE/logs/initdb.log"
    pg_conf "$STATE/pg/primary" "$P_PRIMARY"
    as_pg "$pg/pg_ctl" -D "$STATE/pg/primary" -l "$STATE/pg/primary.log" -w -t 60 start >/dev/null ||
        die "primary did not start: $STATE/pg/primary.log"
    for db in robert robert_codes; do
        as_pg "$pg/createdb" -h "$H" -p "$P_PRIMARY" -U postgres "$db"
    done
    log "PostgreSQL standby on $P_STANDBY (pg_basebackup -R)"
    as_pg "$pg/pg_basebackup" -h "$H" -p "$P_PRIMARY" -U postgres -D "$STATE/pg/standby" \
        -R -X stream -c fast >"$STATE/logs/basebackup.log" 2>&1 || die "pg_basebackup failed"
    cat >>"$STATE/pg/standby/postgresql.auto.conf" <<EOF
port = $P_STANDBY
# Once promoted it has no standby of its own: it must not wait for one.
synchronous_standby_names = ''
primary_conninfo = 'host=$H port=$P_PRIMARY user=postgres application_name=standby'
EOF
    as_pg "$pg/pg_ctl" -D "$STATE/pg/standby" -l "$STATE/pg/standby.log" -w -t 60 start >/dev/null ||
        die "standby did not start: $STATE/pg/standby.log"
    if [[ $SYNC_STANDBY == 1 ]]; then
        # Only now: with no standby connected, every commit would wait.
        as_pg "$pg/psql" -h "$H" -p "$P_PRIMARY" -U postgres -Atqc \
            "alter system set synchronous_standby_names = 'standby'" -c "select pg_reload_conf()" >/dev/null
        deadline=$((SECONDS + 30))
        until [[ $(as_pg "$pg/psql" -h "$H" -p "$P_PRIMARY" -U postgres -Atqc \
            "select sync_state from pg_stat_replication where application_name = 'standby'") == sync ]]; do
            ((SECONDS < deadline)) || die "the standby is not synchronous after 30 s"
            sleep 0.2
        done
    fi

    # 2. HAProxy: the database front first (the services connect through it).
    log "HAProxy: balancer $P_LB, database front $P_DB"
    haproxy_env
    haproxy -c -q -f "$root/deploy/haproxy.cfg" || die "haproxy.cfg invalid"
    haproxy -D -f "$root/deploy/haproxy.cfg" >"$STATE/logs/haproxy.log" 2>&1 || die "haproxy did not start"
    echo "haproxy -D" >"$STATE/pids/haproxy.cmd"
    deadline=$((SECONDS + 20))
    until as_pg "$pg/psql" -h "$H" -p "$P_DB" -U postgres -d robert -Atqc 'select 1' >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "database front $P_DB does not answer"
        sleep 0.2
    done

    # 3. SoftHSM token and the keys (generated inside it).
    log "SoftHSM token '$TOKEN' and keys"
    cat >"$STATE/softhsm/softhsm2.conf" <<EOF
directories.tokendir = $STATE/softhsm/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
    export SOFTHSM2_CONF=$STATE/softhsm/softhsm2.conf
    softhsm2-util --init-token --free --label "$TOKEN" --so-pin "$SO_PIN" --pin "$PIN" >"$STATE/logs/softhsm.log"
    (umask 077 && echo "$PIN" >"$STATE/softhsm/pin")

    # 4. Configuration: one file for every node; the per-node addresses come
    #    from the environment.
    local db="postgres://postgres@$H:$P_DB/robert"
    cat >"$STATE/robert.toml" <<EOF
# Generated by deploy/local-cluster.sh (see deploy/robert.toml for production).
[server]
data_dir = "$STATE/data"
database_url = "$db"
trusted_proxies = ["127.0.0.1"]
shutdown_grace_secs = 2

[keys]
store = "pkcs11"
auto_rotate = true

[keys.pkcs11]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "$TOKEN"
pin_file = "$STATE/softhsm/pin"

[codes]
url = "http://$H:$P_CODES"
timeout_ms = 2000

[store]
max_connections = 16
busy_timeout = 5
EOF
    "$robert" keys init -c "$STATE/robert.toml" >"$STATE/logs/keys-init.log" 2>&1 ||
        die "robert keys init failed: $STATE/logs/keys-init.log"
    "$robert" keys show-public -c "$STATE/robert.toml" 2>>"$STATE/logs/keys-init.log" |
        grep -Eo 'MFkw[A-Za-z0-9+/=]+' | head -1 >"$STATE/server-public-key" || true
    [[ -s $STATE/server-public-key ]] || die "no registration public key"

    # 5. The code service (on the same PostgreSQL pair, its own database).
    log "code service on $P_CODES"
    local pepper key_line api_key
    pepper=$("$robert" codes new-pepper 2>/dev/null | grep -Eo '[A-Za-z0-9+/]{40,}={0,2}' | head -1)
    key_line=$("$robert" codes new-api-key 2>/dev/null)
    api_key=$(grep -Eio 'key[^:]*: *[^ ]+' <<<"$key_line" | head -1 | sed 's/.*: *//')
    local key_sha
    key_sha=$(grep -Eo '[0-9a-f]{64}' <<<"$key_line" | head -1)
    [[ -n $pepper && -n $api_key && -n $key_sha ]] || die "cannot make the code service's secrets: $key_line"
    echo "$api_key" >"$STATE/codes-api-key"
    cat >"$STATE/codes.toml" <<EOF
# Generated by deploy/local-cluster.sh.
database_url = "postgres://postgres@$H:$P_DB/robert_codes"
listen = "$H:$P_CODES"
internal_listen = "$H:$P_CODES_INT"

[[peppers]]
id = "local"
secret = "$pepper"

[api]
# The nodes all call from 127.0.0.1.
verify_unlimited_addresses = ["127.0.0.1"]

[[api.clients]]
name = "local-cluster"
key_sha256 = "$key_sha"
daily_quota = 1000000
per_minute = 100000
EOF
    "$robert" codes -c "$STATE/codes.toml" migrate >"$STATE/logs/codes-migrate.log" 2>&1 ||
        die "code service migration failed: $STATE/logs/codes-migrate.log"
    spawn codes "$STATE/logs/codes.log" "$robert" codes -c "$STATE/codes.toml" serve
    wait_http "http://$H:$P_CODES_INT/health" 30 || die "code service not healthy: $STATE/logs/codes.log"

    # 6. Three API nodes, one after the other: the first migrates the
    #    schema, and SoftHSM's file token can fail a node that opens it
    #    while another writes it ("GetTokenInfo: ... unrecoverable error");
    #    such a node is started again once, as systemd's Restart= would.
    local n try
    for n in 1 2 3; do
        for try in 1 2; do
            log "node$n on $(node_port $n)"
            ROBERT_SERVER__BIND=$H:$(node_port "$n") ROBERT_SERVER__INTERNAL_BIND=$H:$(node_int_port "$n") \
                spawn "node$n" "$STATE/logs/node$n.log" "$robert" serve -c "$STATE/robert.toml" --batch-every "$BATCH_EVERY"
            wait_node "$n" 60 && break
            ((try == 1)) && pid_of "node$n" >/dev/null && die "node$n not ready: $STATE/logs/node$n.log"
            ((try == 2)) && die "node$n not ready: $STATE/logs/node$n.log"
            log "node$n exited at start: starting it again"
        done
    done
    wait_http "http://$H:$P_LB/actuator/health/readiness" 20 || die "balancer not ready"
    trap - EXIT
    log "up in $((SECONDS - t0)) s"
    json_status
}

stop_pid() { # name pid
    kill -TERM "$2" 2>/dev/null || return 0
    local i
    for i in $(seq 1 50); do
        alive "$2" || return 0
        sleep 0.2
    done
    log "$1 ($2) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$2" 2>/dev/null || true
}

down() {
    [[ -d $STATE ]] || { log "nothing in $STATE"; return 0; }
    local name pid pg
    for name in node1 node2 node3 codes haproxy; do
        if pid=$(pid_of "$name"); then
            log "stopping $name ($pid)"
            stop_pid "$name" "$pid"
        fi
        rm -f "$STATE/pids/$name.pid"
    done
    pg=$(pgbin)
    for name in standby primary; do
        if pg_pid "$STATE/pg/$name" >/dev/null; then
            log "stopping PostgreSQL $name"
            as_pg "$pg/pg_ctl" -D "$STATE/pg/$name" -m fast -w -t 30 stop >/dev/null ||
                as_pg "$pg/pg_ctl" -D "$STATE/pg/$name" -m immediate -w stop >/dev/null || true
        fi
    done
    log "down (logs kept in $STATE/logs)"
}

case ${1:-} in
up) up ;;
down) down ;;
status) json_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
