#!/usr/bin/env bash
# Runs every runseal benchmark (issue 8) and writes docs/bench/RESULTS.md and its charts.
#
#   bench/run.sh                  # the full run (about 12 minutes on 2 cores, release build included)
#   bench/run.sh --quick          # fewer runs, 1 s load phases: for development
#   bench/run.sh --only start     # one section: start, storm, throughput, memory, peers, report
#
# It builds the release binaries, installs what is missing from Debian's packages (etcd-server,
# GNU time, binutils, openssl, pgbench) and matplotlib into a venv under target/, and runs on
# loopback only. etcd is started by the benchmark on scratch ports and stopped when it is done.
# PostgreSQL: RUNSEAL_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres) must
# reach a local server that lets this user create databases; without one the PostgreSQL parts
# (storm on replicas, pgbench) are skipped and RESULTS.md says so. Benchmarks measure; they never
# fail because the machine is slow.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=""
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK="--quick" ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (use --quick, --only SECTION)" >&2; exit 64 ;;
    esac
    shift
done
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

OUT=target/bench
DATA=docs/bench/data
# The release binaries: under CARGO_TARGET_DIR when it is set (as cargo puts them), else target/.
BIN="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$OUT/work" "$DATA"
export RUNSEAL_BENCH_PG_URL="${RUNSEAL_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

apt_install() {
    echo "== installing Debian packages: $*"
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v strip >/dev/null || need+=(binutils)
command -v openssl >/dev/null || need+=(openssl)
if want peers; then
    command -v etcd >/dev/null || need+=(etcd-server)
    command -v pgbench >/dev/null || need+=(postgresql-client)
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
# Debian's etcd-server enables a system etcd; the benchmark runs its own, so keep that one off.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
fi

pg_ready() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_ready && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
PG_ARGS=()
if pg_ready; then
    PG_ARGS=(--pg-url "$RUNSEAL_BENCH_PG_URL")
else
    echo "!! PostgreSQL is not reachable on 127.0.0.1:5432: skipping its parts" >&2
fi

VENV=target/bench-venv
if want report && ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "== matplotlib into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q matplotlib
fi

if [ "$ONLY" != "report" ]; then
    echo "== cargo build --release (runseald, runseal, runseal-agent, orchestrator; runseal-bench from bench/)"
    cargo build --release --bins --example orchestrator -p runseal -p runseal-bench
fi

TLS=$OUT/tls
if [ ! -f "$TLS/server.pem" ]; then
    echo "== a throwaway CA and server certificate for 127.0.0.1 (openssl)"
    mkdir -p "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=runseal bench CA" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
        -CAcreateserial -days 30 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" 2>/dev/null
fi
if [ ! -f "$TLS/server-rsa.pem" ]; then
    # The same server certificate with an RSA-2048 key (the start section's handshake comparison).
    echo "== an RSA-2048 server certificate for 127.0.0.1 from the same CA (openssl)"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$TLS/server-rsa.key" -out "$TLS/server-rsa.csr" 2>/dev/null
    openssl x509 -req -in "$TLS/server-rsa.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
        -CAcreateserial -days 30 -extfile "$TLS/ext.cnf" -out "$TLS/server-rsa.pem" 2>/dev/null
fi

# Every measured binary is a fresh copy, as an image layer or `cargo install` would hold it: the
# linker's own output takes more page faults per start for the same bytes (docs/bench/NOTES.md,
# third round), which would count against the agent.
if [ "$ONLY" != "report" ]; then
    rm -rf "$OUT/bin"
    mkdir -p "$OUT/bin/examples"
    for b in runseald runseal runseal-agent runseal-bench; do cp "$BIN/$b" "$OUT/bin/$b"; done
    cp "$BIN/examples/orchestrator" "$OUT/bin/examples/orchestrator"
fi
BIN=$OUT/bin
COMMON=(--bin-dir "$BIN" --tls-dir "$TLS" --work-dir "$OUT/work" $QUICK)
run() { echo "== $1"; "$BIN/runseal-bench" "$@"; }

# The machine and what else ran, recorded before the load starts.
if [ "$ONLY" != "report" ]; then
    # The commit measured (and whether the tree differs from it, outside the results written here).
    COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git diff --quiet HEAD -- . ':!docs/bench' 2>/dev/null || COMMIT="$COMMIT+changes"
    {
        echo "{"
        echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\","
        echo "  \"commit\": \"$COMMIT\","
        echo "  \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\","
        echo "  \"cores\": $(nproc),"
        echo "  \"memory_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
        echo "  \"kernel\": \"$(uname -sr)\","
        echo "  \"filesystem\": \"$(df -T "$OUT/work" | awk 'NR==2 {print $2" on "$1}')\","
        echo "  \"rustc\": \"$(rustc --version)\","
        echo "  \"load_average_at_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
        echo "  \"quick\": $([ -n "$QUICK" ] && echo true || echo false),"
        echo "  \"note\": \"${RUNSEAL_BENCH_NOTE:-}\""
        echo "}"
    } >"$DATA/machine${ONLY:+-$ONLY}.json"
fi

want start && run start "${COMMON[@]}" --out "$DATA/start.json"
want throughput && run throughput "${COMMON[@]}" --out "$DATA/throughput.json"
want peers && run peers "${COMMON[@]}" "${PG_ARGS[@]}" --out "$DATA/peers.json"
want memory && run memory "${COMMON[@]}" --out "$DATA/memory.json"
# The storm always runs the full counts (100 and 1,000 runners): they take seconds, and the
# targets are stated for them.
want storm && run storm --bin-dir "$BIN" --work-dir "$OUT/work" "${PG_ARGS[@]}" \
    --orchestrator "$BIN/examples/orchestrator" --out "$DATA/storm.json"

if want report; then
    echo "== docs/bench/RESULTS.md and charts"
    if "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
        "$VENV/bin/python" bench/report.py "$DATA" docs/bench
    else
        python3 bench/report.py "$DATA" docs/bench
    fi
fi
