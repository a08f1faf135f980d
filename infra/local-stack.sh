#!/usr/bin/env bash
# A local stack for trying nerflow against real services, on loopback only: a Prefect server
# (SQLite) and an S3 endpoint (moto) with a bucket seeded with the sample documents of
# examples/documents. Both run in the background; state, logs and pids live in the state
# directory. See infra/README.md.
#
#   infra/local-stack.sh [start]    start both (or report them if already up), print how to use them
#   infra/local-stack.sh status     which services run, and whether they answer (exit 3 if not all)
#   infra/local-stack.sh env        print the shell exports (eval "$(infra/local-stack.sh env)")
#   infra/local-stack.sh stop       stop both and remove the pid files (logs and the database stay)
#
# Settings (environment):
#   NERFLOW_STACK_DIR          state directory (default: <repo>/.local-stack)
#   NERFLOW_STACK_PREFECT_PORT Prefect server port (default 4200; 0 picks a free one)
#   NERFLOW_STACK_S3_PORT      S3 endpoint port (default 9000; 0 picks a free one)
#   NERFLOW_STACK_BUCKET       bucket to create and seed (default nerflow)
#   NERFLOW_STACK_TIMEOUT      seconds to wait for the services to answer (default 240)
#   NERFLOW_VENV               the virtual environment (default: <repo>/.venv)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(realpath -m "${NERFLOW_VENV:-$repo/.venv}")"
state="$(realpath -m "${NERFLOW_STACK_DIR:-$repo/.local-stack}")"
host=127.0.0.1
bucket="${NERFLOW_STACK_BUCKET:-nerflow}"
timeout="${NERFLOW_STACK_TIMEOUT:-240}"
services=(s3 prefect)

say() { printf '%s\n' "$*"; }
die() { printf 'local-stack: %s\n' "$*" >&2; exit 1; }

# The command line each service's pid must still show: a pid file that outlived its process
# (a reboot) may name an unrelated process by now, which must never be signalled.
expected_cmd() {
    case "$1" in
        s3) echo moto_server ;;
        prefect) echo "prefect server start" ;;
    esac
}

# The pid of a service that is running (and is ours), or nothing.
service_pid() {
    local file="$state/$1.pid" pid
    [[ -f "$file" ]] || return 0
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ "$cmdline" == *"$(expected_cmd "$1")"* ]]; then
        echo "$pid"
    fi
}

read_ports() {
    prefect_port="" s3_port=""
    if [[ -f "$state/ports" ]]; then
        # shellcheck source=/dev/null
        source "$state/ports"
    fi
}

pyhttp_ok() {
    # One GET, no proxy (loopback), success on any 2xx.
    "$py" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=5) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
PY
}

health_url() {
    case "$1" in
        s3) echo "http://$host:$s3_port/" ;;
        prefect) echo "http://$host:$prefect_port/api/health" ;;
    esac
}

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
    ! "$py" -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

need_python() {
    py="$venv/bin/python"
    # Starting the services needs only these; a full (re)install is left to scripts/setup-env.sh
    # when they are missing, so that `start` does not pay for one on every call.
    if ! "$py" -c 'import prefect, moto.server, s3fs, nerflow' >/dev/null 2>&1; then
        cd "$repo"
        # shellcheck source=SCRIPTDIR/../scripts/setup-env.sh
        source "$repo/scripts/setup-env.sh"
    fi
}

write_env() {
    local s3="http://$host:$s3_port"
    cat >"$state/stack.env" <<EOF
# nerflow local stack ($state): source this file, then run nerflow against it.
export PREFECT_API_URL=http://$host:$prefect_port/api
# botocore (and so s3fs, which nerflow uses) reads the S3 endpoint from here, so no
# --endpoint-url is needed. moto accepts any credentials.
export AWS_ENDPOINT_URL_S3=$s3
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1
export NO_PROXY=$host,localhost\${NO_PROXY:+,\$NO_PROXY}
export no_proxy=\$NO_PROXY
export PATH=$venv/bin:\$PATH
EOF
}

print_usage_hints() {
    local s3="http://$host:$s3_port" rel_state
    rel_state="$state"
    if [[ "$state" == "$PWD"/* ]]; then rel_state="${state#"$PWD"/}"; fi
    cat <<EOF

nerflow local stack is up (state, logs and pids in $state)
  Prefect UI    http://$host:$prefect_port
  Prefect API   http://$host:$prefect_port/api
  S3 (moto)     $s3   bucket s3://$bucket, sample documents under s3://$bucket/documents/

Use it:
  source $rel_state/stack.env
  nerflow run s3://$bucket/documents s3://$bucket/output
  nerflow validate s3://$bucket/output
  nerflow warehouse s3://$bucket/output --duckdb $rel_state/warehouse.duckdb

or without sourcing anything:
  PREFECT_API_URL=http://$host:$prefect_port/api AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
  AWS_DEFAULT_REGION=us-east-1 $venv/bin/nerflow run s3://$bucket/documents s3://$bucket/output --endpoint-url $s3

moto keeps objects in memory: what is written to s3://$bucket is gone after
'infra/local-stack.sh stop' (the Prefect database in $rel_state/prefect stays).
EOF
}

start_service() {
    local name="$1"; shift
    # A session of its own: `stop` signals the whole group (the Prefect server runs its API in
    # a child process), and a Ctrl-C in this terminal does not reach the services. The shell
    # runs without job control, so setsid execs in place and $! is the service's own pid.
    setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
    echo $! >"$state/$name.pid"
}

wait_until_answering() {
    local name="$1" deadline=$((SECONDS + timeout)) pid
    pid="$(<"$state/$name.pid")"
    while ((SECONDS < deadline)); do
        # Liveness, not service_pid: the pid was started a moment ago by this very script, so
        # it cannot be a stale one, and until the forked shell has exec'd the service (which
        # can take a while on a busy machine) its command line is still this script's.
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$state/$name.log" >&2 || true
            die "$name exited during start-up (log: $state/$name.log)"
        fi
        pyhttp_ok "$(health_url "$name")" && return 0
        sleep 1
    done
    tail -n 40 "$state/$name.log" >&2 || true
    die "$name did not answer within $timeout s (log: $state/$name.log; NERFLOW_STACK_TIMEOUT to wait longer)"
}

seed_bucket() {
    AWS_ENDPOINT_URL_S3="http://$host:$s3_port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
        AWS_DEFAULT_REGION=us-east-1 NO_PROXY="$host,localhost" \
        "$py" - "$bucket" "$repo/examples/documents" <<'PY'
import pathlib, sys

import s3fs

bucket, source = sys.argv[1], pathlib.Path(sys.argv[2])
fs = s3fs.S3FileSystem(skip_instance_cache=True)
if not fs.exists(bucket):
    fs.mkdir(bucket)
files = sorted(p for p in source.rglob("*") if p.is_file())
for path in files:
    fs.put_file(str(path), f"{bucket}/documents/{path.relative_to(source).as_posix()}")
print(f"seeded s3://{bucket}/documents/ with {len(files)} objects from {source}")
PY
}

cmd_start() {
    need_python
    mkdir -p "$state/prefect"
    # Nothing of the state directory belongs in git, wherever it is.
    [[ -f "$state/.gitignore" ]] || echo '*' >"$state/.gitignore"

    local running=() name
    for name in "${services[@]}"; do
        if [[ -n "$(service_pid "$name")" ]]; then
            running+=("$name")
        fi
    done
    if ((${#running[@]} == ${#services[@]})); then
        read_ports
        say "local-stack: already running"
        print_usage_hints
        return 0
    fi
    ((${#running[@]} == 0)) || die "only ${running[*]} is running; run '$0 stop' first"

    prefect_port="${NERFLOW_STACK_PREFECT_PORT:-4200}"
    s3_port="${NERFLOW_STACK_S3_PORT:-9000}"
    if [[ "$prefect_port" == 0 ]]; then prefect_port="$(free_port)"; fi
    if [[ "$s3_port" == 0 ]]; then s3_port="$(free_port)"; fi
    if port_in_use "$prefect_port"; then
        die "port $prefect_port is in use (set NERFLOW_STACK_PREFECT_PORT, 0 for any free port)"
    fi
    if port_in_use "$s3_port"; then
        die "port $s3_port is in use (set NERFLOW_STACK_S3_PORT, 0 for any free port)"
    fi
    printf 'prefect_port=%s\ns3_port=%s\nbucket=%s\n' "$prefect_port" "$s3_port" "$bucket" >"$state/ports"

    # A start that fails half-way leaves nothing running (the logs stay, for the reason).
    trap 'cmd_stop >/dev/null' EXIT
    start_service s3 "$venv/bin/moto_server" -H "$host" -p "$s3_port"
    # Every Prefect setting the server reads is pinned here, so that a profile or PREFECT_*
    # variables of the calling shell cannot point it at another database or API.
    start_service prefect env \
        PREFECT_HOME="$state/prefect" \
        PREFECT_PROFILES_PATH="$state/prefect/profiles.toml" \
        PREFECT_API_URL="http://$host:$prefect_port/api" \
        PREFECT_SERVER_UI_API_URL="http://$host:$prefect_port/api" \
        PREFECT_API_DATABASE_CONNECTION_URL="sqlite+aiosqlite:///$state/prefect/prefect.db" \
        PREFECT_SERVER_ANALYTICS_ENABLED=false \
        DO_NOT_TRACK=1 \
        NO_PROXY="$host,localhost" \
        "$venv/bin/prefect" server start --host "$host" --port "$prefect_port"

    say "local-stack: waiting for moto on $host:$s3_port and Prefect on $host:$prefect_port (logs in $state)"
    wait_until_answering s3
    seed_bucket
    wait_until_answering prefect
    write_env
    trap - EXIT
    print_usage_hints
}

stop_service() {
    local name="$1" pid deadline
    pid="$(service_pid "$name")"
    if [[ -z "$pid" ]]; then
        rm -f "$state/$name.pid"
        say "$name: not running"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        say "$name: still running after 20 s, killing"
        kill -KILL -- "-$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$state/$name.pid"
    say "$name: stopped (pid $pid)"
}

cmd_stop() {
    local name
    for name in prefect s3; do
        stop_service "$name"
    done
    rm -f "$state/stack.env" "$state/ports"
}

cmd_status() {
    need_python
    read_ports
    local name pid all=0
    for name in "${services[@]}"; do
        pid="$(service_pid "$name")"
        if [[ -z "$pid" ]]; then
            say "$name: stopped"
            all=3
        elif pyhttp_ok "$(health_url "$name")"; then
            say "$name: running (pid $pid), answering at $(health_url "$name")"
        else
            say "$name: running (pid $pid), not answering at $(health_url "$name") (log: $state/$name.log)"
            all=3
        fi
    done
    return "$all"
}

cmd_env() {
    [[ -f "$state/stack.env" ]] || die "not running (no $state/stack.env): '$0 start' first"
    grep -v '^#' "$state/stack.env"
}

case "${1:-start}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (start, status, env, stop)" ;;
esac
