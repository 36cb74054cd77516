#!/usr/bin/env bash
# Instructions runseald spends per GetSnapshot, counted by callgrind (repeatable on a noisy
# machine, unlike timings): runseald runs under valgrind with instrumentation off, 50 secrets
# are set and a snapshot key made, one warm-up load runs, then instrumentation is switched on
# for one 8 s load of `runseal-bench load` only.
#
#   bench/profile-server.sh BIN_DIR warm|cold plain|tls [WORK_DIR]
#
# BIN_DIR holds runseald, runseal and runseal-bench (release builds); TLS uses the certificates
# bench/run.sh makes under target/bench/tls. Prints one line: instructions, fetches, per fetch;
# the callgrind files stay in WORK_DIR for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1") MODE=$2 TRANSPORT=$3
W=${4:-target/bench/profile-server-$MODE-$TRANSPORT}
TLSD=$(realpath target/bench/tls)
PORT=${PROFILE_PORT:-18443}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 69; }
rm -rf "$W"; mkdir -p "$W"; W=$(realpath "$W")
args=(serve --data-dir "$W/data" --listen "127.0.0.1:$PORT")
scheme=http
if [ "$TRANSPORT" = tls ]; then
    args+=(--tls-cert "$TLSD/server.pem" --tls-key "$TLSD/server.key"); scheme=https
fi
# Builds before the dashboard have no --web-listen.
"$BIN/runseald" serve --help | grep -q -- --web-listen && args+=(--web-listen off)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$W/callgrind.%p" \
    "$BIN/runseald" "${args[@]}" >"$W/server.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
    [ -f "$W/data/admin.key" ] && grep -q listening "$W/server.log" && break
    sleep 0.5
done
export RUNSEAL_ADDR=$scheme://127.0.0.1:$PORT RUNSEAL_CA_CERT=$TLSD/ca.pem
RUNSEAL_KEY=$(cat "$W/data/admin.key"); export RUNSEAL_KEY
set_args=(); for i in $(seq 1 50); do set_args+=("SECRET_$i=value-$i-abcdefghijklmnopqrstuvwxyz0123"); done
"$BIN/runseal" secrets set "${set_args[@]}" >/dev/null
"$BIN/runseal" keys create --scope snapshot:main --label profile >"$W/snap.key" 2>/dev/null
load() {
    "$BIN/runseal-bench" load --addr "$RUNSEAL_ADDR" --ca-cert "$TLSD/ca.pem" \
        --credential-file "$W/snap.key" --expect 50 --mode "$MODE" --concurrency 8 --duration "$1"
}
load 3 >/dev/null 2>&1 || true
callgrind_control -i on $VG >/dev/null
load 8 >"$W/load.json" 2>"$W/load.err"
callgrind_control -i off $VG >/dev/null
callgrind_control -d $VG >/dev/null
kill $VG; wait $VG 2>/dev/null || true
trap - EXIT
ir=0
for f in "$W"/callgrind.*; do
    # A part with nothing collected prints "." for its total.
    n=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print ($1 ~ /^[0-9]+$/) ? $1 : 0}')
    ir=$((ir + ${n:-0}))
done
ops=$(python3 -c "import json; print(json.load(open('$W/load.json'))['ops'])")
echo "$MODE $TRANSPORT: $ir instructions for $ops fetches: $((ir / ops)) per fetch ($W)"
