#!/usr/bin/env bash
# Interleaved A/B (issue 13, acceptance 4): A = f6ef7b3 (main before the redesign), B = HEAD.
# The same runseal-bench (B's) drives both; every binary is a fresh copy.
set -euo pipefail
cd /work/main
for r in ${ROUNDS:-1 2 3}; do
  for t in ${TREES:-a b}; do
    echo "== round $r tree $t $(date -u +%H:%M:%S)"
    /work/ab13/$t/runseal-bench throughput --bin-dir /work/ab13/$t --tls-dir target/bench/tls --work-dir target/bench/work --out /work/ab13/$t-throughput-$r.json > /work/ab13/$t-throughput-$r.log 2>&1
    /work/ab13/$t/runseal-bench start --bin-dir /work/ab13/$t --tls-dir target/bench/tls --work-dir target/bench/work --out /work/ab13/$t-start-$r.json > /work/ab13/$t-start-$r.log 2>&1
  done
done
echo "== done $(date -u +%H:%M:%S)"
