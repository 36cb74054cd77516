#!/usr/bin/env python3
"""Turns the JSON written by `runseal-bench` (docs/bench/data/) into docs/bench/RESULTS.md and
the charts beside it. Run by bench/run.sh; usage: report.py DATA_DIR OUT_DIR.

Charts need matplotlib (bench/run.sh installs it into a venv under target/); without it the
tables are still written and the charts are left as they were."""

import json
import math
import os
import sys

DATA, OUT = sys.argv[1], sys.argv[2]


def load(name):
    path = os.path.join(DATA, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def num(x, fmt="{:.2f}"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x)


def div(a, b, scale=1.0):
    """a / b * scale, or None when either is missing (NaN is written as null) or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b * scale


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out) + "\n"


machine = load("machine") or {}
start = load("start")
throughput = load("throughput")
peers = load("peers")
memory = load("memory")
storm = load("storm")
sections_run_alone = sorted(
    f[len("machine-"):-len(".json")] for f in os.listdir(DATA) if f.startswith("machine-")
)

md = []
md.append("# runseal benchmarks: results\n")
md.append(
    "Written by `bench/run.sh` (do not edit by hand: rerun it). Method, targets and the profile "
    "notes are below the tables; the raw numbers are in [`data/`](data/).\n"
)
md.append("## Machine and run\n")
md.append(
    table(
        ["", ""],
        [
            ["date (UTC)", machine.get("date", "?")],
            ["commit", "`%s`" % machine.get("commit", "?")],
            ["CPU", "%s, **%s cores**" % (machine.get("cpu", "?"), machine.get("cores", "?"))],
            ["memory", "%s GiB" % machine.get("memory_gib", "?")],
            ["kernel", machine.get("kernel", "?")],
            ["data dirs on", machine.get("filesystem", "?")],
            ["rustc", machine.get("rustc", "?")],
            ["run", "**quick** (`--quick`: fewer runs, 1 s load phases)" if machine.get("quick") else "full"],
            ["load average at start", machine.get("load_average_at_start", "?")],
            ["also running", machine.get("note") or "nothing noted"],
        ]
        + ([["sections rerun alone", ", ".join(sections_run_alone)]] if sections_run_alone else []),
    )
)

targets = []  # (target, measured, met)

# 1. Runner start overhead.
if start:
    md.append("## 1. Runner start overhead\n")
    md.append(
        "Whole process, spawn to exit, of `runseal-agent -- /bin/true` (one single-use runner "
        "token per run, as an orchestrator gives each runner) against the floor "
        "`/usr/bin/env K1=V1 … /bin/true` with the same variables. Each agent run is paired with "
        "a floor run just before it, so both see the same (shared) machine. %d runs per row after "
        "a tenth of warm-up runs; medians and p99 in milliseconds.\n" % start["runs"]
    )
    rows = []
    for r in start["rows"]:
        rows.append(
            [
                r["transport"],
                r["secrets"],
                num(r["floor"]["p50_ms"]),
                num(r["agent"]["p50_ms"]),
                "+" + num(r["added_ms"]),
                "**%s×**" % num(r["ratio"]),
                num(r["floor"]["p99_ms"]),
                num(r["agent"]["p99_ms"]),
                r["errors"],
            ]
        )
    md.append(
        table(
            ["transport", "secrets", "floor p50", "agent p50", "added", "ratio", "floor p99", "agent p99", "errors"],
            rows,
        )
    )
    md.append("![runner start time vs number of secrets](start.png)\n")

    def agent_p50(transport, n):
        r = next((r for r in start["rows"] if r["transport"] == transport and r["secrets"] == n), None)
        return r["agent"]["p50_ms"] if r else None

    if start.get("usage"):
        md.append("### The agent's own CPU, page faults and peak RSS per start\n")
        ml = start.get("memlock") or {}
        mib = lambda b: "unlimited" if b is None else ("%g MiB" % (b / 2**20) if b >= 2**20 else "%d KiB" % (b // 1024))
        md.append(
            "`getrusage(RUSAGE_CHILDREN)` of a fresh helper process whose only child is the command "
            "(`runseal-bench rusage`), for `runseal-agent -- /bin/true` (loopback plaintext, its own "
            "token), `/bin/true` alone and `runseal-agent --version`, one round of the three per run; "
            "agent = the first minus `/bin/true` in the same round (user + system CPU; minor + major "
            "faults). Peak RSS is `ru_maxrss` of a further agent run under GNU time (before and after its exec). "
            "RLIMIT_MEMLOCK of the run: soft %s, hard %s (with ≥ 64 MiB the agent locks its memory; "
            "here it %s).\n" % (mib(ml.get("soft_bytes")), mib(ml.get("hard_bytes")), "does" if ml.get("agent_locks") else "does not")
        )
        md.append(
            table(
                ["secrets", "agent CPU p50 ms", "p99 ms", "`--version` CPU p50 ms", "ratio", "`/bin/true` CPU p50 ms",
                 "agent page faults p50", "p99", "`--version` faults p50", "agent peak RSS p50", "max", "errors"],
                [
                    [
                        u["secrets"],
                        num(u["agent_cpu_ms"]["p50"], "{:.3f}"),
                        num(u["agent_cpu_ms"]["p99"], "{:.3f}"),
                        num(u["version_cpu_ms"]["p50"], "{:.3f}"),
                        "**%s×**" % num(u["cpu_ratio"]),
                        num(u["true_cpu_ms"]["p50"], "{:.3f}"),
                        num(u["agent_faults"]["p50"], "{:.0f}"),
                        num(u["agent_faults"]["p99"], "{:.0f}"),
                        num(u["version_faults"]["p50"], "{:.0f}"),
                        "%s MiB" % num(div(u["agent_maxrss_kib"]["p50"], 1024), "{:.1f}"),
                        "%s MiB" % num(div(u["agent_maxrss_kib"]["max"], 1024), "{:.1f}"),
                        u["errors"],
                    ]
                    for u in start["usage"]
                ],
            )
        )
        for u in start["usage"]:
            targets.append(
                (
                    "agent CPU per start, %d secrets: ≤ 1.5× `runseal-agent --version`" % u["secrets"],
                    "%s× (%s ms vs %s ms)" % (num(u["cpu_ratio"]), num(u["agent_cpu_ms"]["p50"], "{:.3f}"), num(u["version_cpu_ms"]["p50"], "{:.3f}")),
                    u["cpu_ratio"] is not None and u["cpu_ratio"] <= 1.5,
                )
            )
            targets.append(
                (
                    "agent page faults per start, %d secrets: ≤ 200" % u["secrets"],
                    "%s (median)" % num(u["agent_faults"]["p50"], "{:.0f}"),
                    u["agent_faults"]["p50"] is not None and u["agent_faults"]["p50"] <= 200,
                )
            )

    if start.get("server_share"):
        md.append("### The server's share of a start\n")
        md.append(
            "GetSnapshot with single-use runner tokens on one connection opened beforehand, one "
            "request in flight, request sent → response received in the benchmark process: runseald's "
            "work plus one loopback round trip (and the client's decoding). On disk each redemption "
            "waits for an fsync (SQLite `synchronous=FULL`); on tmpfs the fsync is a no-op. Beside it, "
            "the agent's whole start (loopback plaintext, table above).\n"
        )
        md.append(
            table(
                ["data dir", "filesystem", "secrets", "server p50 ms", "p99 ms", "agent start p50 ms", "server share", "errors"],
                [
                    [
                        r["storage"],
                        r["filesystem"],
                        r["secrets"],
                        num(r["latency"]["p50_ms"], "{:.3f}"),
                        num(r["latency"]["p99_ms"], "{:.3f}"),
                        num(agent_p50("loopback plaintext", r["secrets"])),
                        "%s%%" % num(div(r["latency"]["p50_ms"], agent_p50("loopback plaintext", r["secrets"]), 100), "{:.0f}"),
                        r["errors"],
                    ]
                    for r in start["server_share"]
                ],
            )
        )

    if start.get("not_durable"):
        md.append("### A start without the durable write (for comparison only)\n")
        md.append(
            "The same runner start against runseald on a data dir on tmpfs, where the fsync that makes "
            "the token's use durable is a no-op: what durability costs a start on this disk. runseald "
            "never runs so by choice (a used single-use token must stay used after a crash); this row "
            "is not a target.\n"
        )
        md.append(
            table(
                ["transport", "secrets", "floor p50", "agent p50", "ratio", "same start, durable", "errors"],
                [
                    [
                        r["transport"],
                        r["secrets"],
                        num(r["floor"]["p50_ms"]),
                        num(r["agent"]["p50_ms"]),
                        "%s×" % num(r["ratio"]),
                        "%s ms" % num(agent_p50("loopback plaintext", r["secrets"])),
                        r["errors"],
                    ]
                    for r in start["not_durable"]
                ],
            )
        )

    if start.get("handshake"):
        md.append("### The TLS handshake's share of a TLS start\n")
        md.append(
            "TCP connect + rustls handshake (TLS 1.3, ALPN h2, no resumption) to runseald's TLS port, "
            "a new connection each time, %d runs; share = handshake p50 / the agent's TLS start p50 "
            "(the same certificate; RSA-2048 is runseald restarted with an openssl RSA key from the same CA).\n" % start["runs"]
        )
        md.append(
            table(
                ["certificate", "handshake p50 ms", "p99 ms", "TLS start p50 ms (secrets)", "handshake share", "errors"],
                [
                    [
                        h["certificate"],
                        num(h["handshake"]["p50_ms"], "{:.3f}"),
                        num(h["handshake"]["p99_ms"], "{:.3f}"),
                        "%s (%d)" % (num(h["tls_start"]["p50_ms"]), h["tls_start_secrets"]),
                        "**%s%%**" % num(div(h["share"], 1, 100), "{:.0f}"),
                        h["errors"],
                    ]
                    for h in start["handshake"]
                ],
            )
        )

    for r in start["rows"]:
        if r["transport"] == "loopback plaintext" and r["secrets"] == 50:
            targets.append(
                (
                    "runner start, 50 secrets, loopback: ≤ 2.5× a bare exec (issue 8)",
                    "%s× (%s ms vs %s ms)" % (num(r["ratio"]), num(r["agent"]["p50_ms"]), num(r["floor"]["p50_ms"])),
                    r["ratio"] <= 2.5,
                )
            )
    # The lean-agent targets (issue 15): 1.5× the floor over loopback TCP and the Unix socket
    # (50 and 500 secrets), 2× over TLS (50 secrets).
    for r in start["rows"]:
        limit = 2.0 if r["transport"] == "loopback TLS" else 1.5
        if r["secrets"] in (50, 500) and not (r["transport"] == "loopback TLS" and r["secrets"] != 50):
            targets.append(
                (
                    "runner start, %d secrets, %s: ≤ %g× a bare exec" % (r["secrets"], r["transport"], limit),
                    "%s× (%s ms vs %s ms)" % (num(r["ratio"]), num(r["agent"]["p50_ms"]), num(r["floor"]["p50_ms"])),
                    r["ratio"] <= limit,
                )
            )

# 2. Storm.
if storm:
    md.append("## 2. Scale-up storm\n")
    md.append(
        "`examples/orchestrator --json` mints N single-use runner tokens in one call, then starts N "
        "`runseal-agent` processes, at most `parallel` at once; each execs a probe that checks its "
        "secret arrived (10 secrets in the environment). Spawn→exec is from the orchestrator's "
        "spawn to the probe's first instruction. The floor, run right after each row, is "
        "`orchestrator --floor`: the same N, parallelism, variables, probe and spawn/measure code, "
        "each runner a bare `/usr/bin/env NAME=VALUE … <probe>` (no agent, token or server call).\n"
    )
    rows = []
    for r in storm["rows"]:
        s = r["summary"]
        fl = r.get("floor") or {}
        rows.append(
            [
                r["store"],
                r["replicas"],
                r["runners"],
                r["parallel"],
                num(s.get("starts_per_s"), "{:.0f}"),
                num(fl.get("starts_per_s"), "{:.0f}"),
                "**%s×**" % num(r.get("ratio")),
                num(s["spawn_to_exec_ms"]["p50"]),
                num(s["spawn_to_exec_ms"]["p99"]),
                s.get("failed"),
                num(s.get("mint_ms"), "{:.1f}"),
            ]
        )
        if r["store"] == "SQLite" and r.get("ratio") is not None:
            targets.append(
                (
                    "storm of %d on SQLite: agent starts/s ≥ 0.7× the floor's" % r["runners"],
                    "%s× (%s vs %s starts/s)" % (num(r["ratio"]), num(s.get("starts_per_s"), "{:.0f}"), num(fl.get("starts_per_s"), "{:.0f}")),
                    r["ratio"] >= 0.7,
                )
            )
        if r["runners"] >= 1000:
            targets.append(
                ("storm of 1,000 on %s: zero errors" % r["store"], "%s errors" % s.get("failed"), s.get("failed") == 0)
            )
            if r["store"] == "SQLite":
                targets.append(
                    (
                        "storm of 1,000 on SQLite: ≥ 1,000 starts/s",
                        "%s starts/s" % num(s.get("starts_per_s"), "{:.0f}"),
                        s.get("starts_per_s", 0) >= 1000,
                    )
                )
    md.append(
        table(
            ["store", "replicas", "runners", "parallel", "starts/s", "floor starts/s", "agent/floor", "spawn→exec p50 ms", "p99 ms", "errors", "mint ms"],
            rows,
        )
    )
    if not any(r["store"] == "PostgreSQL" for r in storm["rows"]):
        md.append("PostgreSQL was not reachable in this run: its rows are missing.\n")

# 3. Throughput.
def tp_row(p):
    r = p["result"]
    return [
        p.get("server", r["target"]),
        p.get("transport", "plaintext"),
        p.get("secrets", 50),
        r["mode"],
        r["concurrency"],
        num(r["rate"], "{:.0f}"),
        num(r["latency"]["p50_ms"]),
        num(r["latency"]["p99_ms"]),
        num(r.get("server_cpu_pct"), "{:.0f}%"),
        num(r.get("generator_cpu_pct"), "{:.0f}%"),
        r["errors"],
    ]


TP_HEAD = ["server", "transport", "values", "mode", "concurrency", "per s", "p50 ms", "p99 ms", "server CPU", "generator CPU", "errors"]

if throughput:
    md.append("## 3. Snapshot throughput\n")
    md.append(
        "`runseal-bench load`, a separate process, fetches snapshots with a fixed number of requests "
        "in flight: **warm** shares up to 4 connections opened once; **cold** opens a new connection "
        "(and TLS handshake) per fetch, as every new runner does. Each fetch is a full runner start "
        "on the server: token check, sealed rows, every value opened, and a use of the token taken "
        "and the start recorded durably (SQLite, `synchronous=FULL`). %g s measured per point after "
        "a warm-up; CPU is %% of one core over the measured window, server and generator separately "
        "(they share the %s cores).\n" % (throughput["duration_s"], machine.get("cores", "?"))
    )
    md.append("### By snapshot size (concurrency %d)\n" % throughput["table_concurrency"])
    md.append(table(TP_HEAD, [tp_row(p) for p in throughput["table"]]))
    md.append("### By concurrency, 50 values, plaintext: runseald beside etcd\n")
    rows = [tp_row(p) for p in throughput["sweep"]]
    if peers:
        for r in peers["etcd"]:
            rows.append(tp_row({"server": "etcd %s" % (peers.get("etcd_version") or "").replace("etcd Version:", "").strip(), "transport": "plaintext", "secrets": peers["keys"], "result": r}))
    md.append(table(TP_HEAD, rows))
    md.append("![throughput vs concurrency](throughput.png)\n")

if peers and peers.get("pgbench"):
    md.append("### PostgreSQL: every runner reads the database itself (`pgbench -C`)\n")
    md.append(
        "`SELECT name, value FROM secrets` (50 rows) with a new connection per read, PostgreSQL %s. "
        "p50/p99 are pgbench's per-transaction log (the query without the connection); the "
        "average connection time is pgbench's own.\n" % (peers.get("postgres_version") or "")
    )
    md.append(
        table(
            ["clients", "reads/s", "latency avg ms", "+ connection avg ms", "p50 ms", "p99 ms", "server CPU", "pgbench CPU"],
            [
                [
                    p["clients"],
                    num(p["tps"], "{:.0f}"),
                    num(p["latency_avg_ms"]),
                    num(p["connection_avg_ms"]),
                    num(p["latency_p50_ms"]),
                    num(p["latency_p99_ms"]),
                    num(p["server_cpu_pct"], "{:.0f}%"),
                    num(p["generator_cpu_pct"], "{:.0f}%"),
                ]
                for p in peers["pgbench"]
            ],
        )
    )

# Targets against etcd.
def find(points, mode, c):
    for p in points:
        r = p["result"] if "result" in p else p
        if r["mode"] == mode and r["concurrency"] == c:
            return r
    return None


if throughput and peers:
    for mode, factor in (("warm", 2.0), ("cold", 1.5)):
        best_rs = max((p["result"]["rate"] for p in throughput["sweep"] if p["result"]["mode"] == mode), default=0)
        best_etcd = max((r["rate"] for r in peers["etcd"] if r["mode"] == mode), default=0)
        if best_etcd:
            targets.append(
                (
                    "%s snapshot throughput ≥ %.1f× etcd's %s prefix read (best of each over the sweep)" % (mode, factor, mode),
                    "%.2f× (%.0f/s vs %.0f/s)" % (best_rs / best_etcd, best_rs, best_etcd),
                    best_rs >= factor * best_etcd,
                )
            )
if throughput:
    for mode in ("warm", "cold"):
        r = find(throughput["sweep"], mode, 256)
        if r:
            targets.append(
                ("p99 < 20 ms at 256 concurrent fetches (%s)" % mode, "%s ms" % num(r["latency"]["p99_ms"]), r["latency"]["p99_ms"] < 20)
            )

# 4. Memory.
if memory:
    md.append("## 4. Memory and size\n")
    md.append(
        "Agent: GNU time's maximum resident set of `runseal-agent -- /bin/true` (%d runs per row; it "
        "covers the agent before exec and the app after), beside the same for the floor.\n" % memory["agent"][0]["runs"]
    )
    md.append(
        table(
            ["secrets", "agent peak RSS max", "median", "floor peak RSS"],
            [
                [a["secrets"], "%.1f MiB" % (a["max_kib"] / 1024), "%.1f MiB" % (a["median_kib"] / 1024), "%.1f MiB" % (a["floor_max_kib"] / 1024)]
                for a in memory["agent"]
            ],
        )
    )
    worst = max(a["max_kib"] for a in memory["agent"])
    targets.append(("agent peak RSS ≤ 10 MiB (issue 8); ≤ 6 MiB (issue 15)", "%.1f MiB (worst of all runs)" % (worst / 1024), worst <= 6 * 1024))
    md.append(
        "runseald (SQLite) holding %d secrets in %d environments; under load the load generator "
        "fetches snapshots of 100 values round-robin over the 100 environments; RSS sampled every "
        "20 ms.\n" % (memory["server_secrets"], memory["server_environments"])
    )
    md.append(
        table(
            ["phase", "RSS", "peak (VmHWM)", "snapshots/s"],
            [
                [s["phase"], "%.1f MiB" % (s["rss_kib"] / 1024), "%.1f MiB" % (s["peak_kib"] / 1024), num(s["load"]["rate"], "{:.0f}") if s.get("load") else "–"]
                for s in memory["server"]
            ],
        )
    )
    md.append(
        table(
            ["binary", "release build", "stripped"],
            [[b["name"], "%.1f MiB" % (b["bytes"] / 2**20), "%.1f MiB" % (b["stripped_bytes"] / 2**20)] for b in memory["binaries"]],
        )
    )

md.append("## Targets (issues 8 and 15)\n")
md.append(table(["target", "measured", "met"], [[t, m, "yes" if ok else "**no**"] for t, m, ok in targets]))

# Before/after the runseald fixes (data/before/: the same benchmarks, quick, on the commit
# before them).
def load_before(name):
    path = os.path.join(DATA, "before", name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


b_start, b_tp, b_storm = load_before("start"), load_before("throughput"), load_before("storm")
if b_start or b_tp or b_storm:
    md.append("## Before and after the fixes the profiles led to\n")
    md.append(
        "`data/before/` holds the same benchmarks (quick: 40 runs per start row, 1 s load phases) "
        "run on this machine at the commit before the second round of fixes described in the notes "
        "below; the first round's figures are in `data/earlier/` and quoted in the notes.\n"
    )
    rows = []
    if b_start and start:
        for t in ("loopback plaintext", "unix socket", "loopback TLS"):
            for b in b_start["rows"]:
                if b["transport"] == t and b["secrets"] == 50:
                    a = next((r for r in start["rows"] if r["transport"] == t and r["secrets"] == 50), None)
                    if a:
                        rows.append(["runner start, 50 secrets, %s: p50 (ratio to floor)" % t,
                                     "%s ms (%s×)" % (num(b["agent"]["p50_ms"]), num(b["ratio"])),
                                     "%s ms (%s×)" % (num(a["agent"]["p50_ms"]), num(a["ratio"]))])
    if b_tp and throughput:
        for mode in ("warm", "cold"):
            for c in (1, 16, 256):
                b, a = find(b_tp["sweep"], mode, c), find(throughput["sweep"], mode, c)
                if a and b:
                    rows.append(["snapshots/s and p99, %s, %d in flight" % (mode, c),
                                 "%s/s, %s ms" % (num(b["rate"], "{:.0f}"), num(b["latency"]["p99_ms"])),
                                 "%s/s, %s ms" % (num(a["rate"], "{:.0f}"), num(a["latency"]["p99_ms"]))])
    if b_storm and storm:
        for b in b_storm["rows"]:
            a = next((r for r in storm["rows"] if r["store"] == b["store"] and r["runners"] == b["runners"]), None)
            if a:
                rows.append(["storm of %d on %s: starts/s, spawn→exec p99" % (b["runners"], b["store"]),
                             "%s/s, %s ms" % (num(b["summary"]["starts_per_s"], "{:.0f}"), num(b["summary"]["spawn_to_exec_ms"]["p99"])),
                             "%s/s, %s ms" % (num(a["summary"]["starts_per_s"], "{:.0f}"), num(a["summary"]["spawn_to_exec_ms"]["p99"]))])
    md.append(table(["measure", "before", "after"], rows))

notes = os.path.join(OUT, "NOTES.md")
if os.path.exists(notes):
    with open(notes) as f:
        md.append(f.read())

md.append("## Method\n")
md.append(
    """- One command: `bench/run.sh` (`--quick` for a short run, `--only SECTION` for one part). It
  builds the release binaries (`lto = "thin"`), makes a throwaway CA and server certificate with
  openssl, and runs `runseal-bench` subcommands; each writes JSON into `docs/bench/data/`, and
  `bench/report.py` writes this file and the charts from it.
- Everything runs on this one machine over loopback or a Unix socket; runseald, the agents, the
  load generator and the peers are separate processes sharing its cores, so every throughput row
  shows the CPU of the server and of the generator separately (`/proc/PID/stat` and `getrusage`).
- runseald runs as shipped (`runseald serve`, release build with the repository's
  `.cargo/config.toml`, SQLite in WAL mode with `synchronous=FULL`, info logging to a file). Each snapshot is fetched with a runner token, so each one is a durable
  write (a use taken, the start recorded), exactly like a runner start.
- Latencies are nearest-rank percentiles over every sample. Runs with errors are counted, not
  dropped.
- etcd (Debian's etcd-server) is a single member on loopback with a scratch data dir, started by
  the benchmark and stopped after; its read is a linearizable prefix Range of the same 50 names
  and values, over the same gRPC stack (tonic) and the same load generator.
- Benchmarks never fail CI; `cargo test` does not run them.
"""
)

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "RESULTS.md"), "w") as f:
    f.write("\n".join(md))
print("report: wrote %s" % os.path.join(OUT, "RESULTS.md"))

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("report: matplotlib is missing: charts not redrawn", file=sys.stderr)
    sys.exit(0)

if start:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = sorted({r["secrets"] for r in start["rows"]})
    floor = {r["secrets"]: r["floor"]["p50_ms"] for r in start["rows"]}
    ax.plot(sizes, [floor[s] for s in sizes], "k--o", label="bare exec (floor)")
    for t in ["loopback plaintext", "loopback TLS", "unix socket"]:
        pts = sorted((r["secrets"], r["agent"]["p50_ms"], r["agent"]["p99_ms"]) for r in start["rows"] if r["transport"] == t)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", label="runseal-agent, %s (p50)" % t)
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("secrets in the snapshot")
    ax.set_ylabel("spawn to exit, median ms")
    ax.set_ylim(bottom=0)
    ax.set_title("Runner start: runseal-agent -- /bin/true vs a bare exec")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "start.png"), dpi=110)

if throughput:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = []
    for mode in ("warm", "cold"):
        pts = sorted((p["result"]["concurrency"], p["result"]["rate"], p["result"]["latency"]["p99_ms"]) for p in throughput["sweep"] if p["result"]["mode"] == mode)
        series.append(("runseald %s" % mode, "-o", pts))
    if peers:
        for mode in ("warm", "cold"):
            pts = sorted((r["concurrency"], r["rate"], r["latency"]["p99_ms"]) for r in peers["etcd"] if r["mode"] == mode)
            series.append(("etcd %s" % mode, "--s", pts))
        if peers.get("pgbench"):
            pts = sorted((p["clients"], p["tps"], p["latency_p99_ms"]) for p in peers["pgbench"])
            series.append(("PostgreSQL, new connection per read", ":^", pts))
    for label, style, pts in series:
        if not pts:
            continue
        a1.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        a2.plot([p[0] for p in pts], [p[2] for p in pts], style, label=label)
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("requests in flight")
        a.grid(alpha=0.3)
    a1.set_ylabel("reads (snapshots) per second")
    a1.set_ylim(bottom=0)
    a2.set_ylabel("p99 latency, ms")
    a2.set_yscale("log")
    a1.set_title("Throughput, 50 values, plaintext loopback")
    a2.set_title("p99 latency")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "throughput.png"), dpi=110)
print("report: charts written to %s" % OUT)
