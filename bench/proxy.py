#!/usr/bin/env python3
"""Benchmark `cutover proxy`: what recording costs the traffic, and whether the recording is whole.

sysbench `oltp_read_only --db-ps-mode=auto` (server-side prepared statements in the binary
protocol, as JDBC with useServerPrepStmts sends them) runs against the sandbox source three
ways, alternately, --rounds times each:

- direct: to the server;
- socat: through `socat` (a plain TCP relay: the floor for any proxy);
- cutover: through `cutover proxy --record` (relays, decodes both directions, writes the
  workload).

It prints median transactions/s and p95 latency of each, the ratios, the proxy's CPU seconds
and peak RSS, and checks the recording: every statement sysbench counted is a record (none
dropped, none undecodable). Then it replays the last recording read-only against the target (an
identical copy) with the source as baseline: zero differences expected. Results go to
bench/out/proxy-<date>.json.

Usage: python3 bench/proxy.py [--rows 10000] [--tables 4] [--threads 8] [--seconds 15] [--rounds 3]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from traffic import ROOT, ensure_tools, free_port, sh

CUTOVER = ROOT / "target" / "release" / "cutover"


def wait_port(port, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def sysbench(port, args, what="run"):
    out = sh(["sysbench", "oltp_read_only", "--db-driver=mysql", "--db-ps-mode=auto",
              "--mysql-host=127.0.0.1", f"--mysql-port={port}", "--mysql-user=root",
              "--mysql-db=sbtest", f"--tables={args.tables}", f"--table-size={args.rows}",
              f"--threads={args.threads}", f"--time={args.seconds}", "--report-interval=0", what],
             capture_output=True).stdout
    if what != "run":
        return None
    tps = float(re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", out).group(1))
    queries = int(re.search(r"total:\s+(\d+)", out).group(1))
    p95 = float(re.search(r"95th percentile:\s+([\d.]+)", out).group(1))
    return {"tps": tps, "queries": queries, "p95_ms": p95}


def proc_cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--tables", type=int, default=4)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = ap.parse_args()
    ensure_tools({"sysbench": "sysbench", "socat": "socat", "mariadbd": "mariadb-server",
                  "mariadb": "mariadb-client", "mariadb-dump": "mariadb-client"})
    if not CUTOVER.exists():
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    sandbox = Path(tempfile.mkdtemp(prefix="cutover-bench-proxy-"))
    result = {"date": datetime.now().isoformat(timespec="seconds"), **vars(args)}
    runs = {"direct": [], "socat": [], "cutover": []}
    proxy_stats = []
    try:
        up = json.loads(sh([str(CUTOVER), "sandbox", "up", "--dir", str(sandbox), "--format", "json"],
                           capture_output=True).stdout)
        src, tgt = up["source"]["port"], up["target"]["port"]
        for port in (src, tgt):
            sh(["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", "-e", "CREATE DATABASE sbtest"])
        sysbench(src, args, "prepare")
        sh(f"mariadb-dump -h127.0.0.1 -P{src} -uroot --single-transaction --quick sbtest"
           f" | mariadb -h127.0.0.1 -P{tgt} -uroot sbtest")
        sysbench(src, args)  # warm-up: buffer pool and prepared-statement caches
        last_record = None
        for rnd in range(args.rounds):
            for mode in ("direct", "socat", "cutover"):
                if mode == "direct":
                    r = sysbench(src, args)
                elif mode == "socat":
                    port = free_port()
                    # nodelay on both legs, as the proxy does (without it Nagle and delayed
                    # ACKs stall every small exchange by tens of milliseconds).
                    p = subprocess.Popen(["socat", f"TCP-LISTEN:{port},fork,reuseaddr,nodelay,bind=127.0.0.1",
                                          f"TCP:127.0.0.1:{src},nodelay"])
                    wait_port(port)
                    try:
                        r = sysbench(port, args)
                    finally:
                        p.terminate()
                        p.wait()
                else:
                    port = free_port()
                    record = sandbox / f"proxy-{rnd}.cwl"
                    p = subprocess.Popen([str(CUTOVER), "proxy", "--listen", f"127.0.0.1:{port}",
                                          "--upstream", f"127.0.0.1:{src}", "--output", str(record),
                                          "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
                    wait_port(port)
                    r = sysbench(port, args)
                    cpu, hwm = proc_cpu_s(p.pid), proc_hwm_mib(p.pid)
                    p.send_signal(signal.SIGTERM)
                    out, err = p.communicate(timeout=120)
                    if p.returncode != 0:
                        sys.exit(f"cutover proxy failed: {err}")
                    summary = json.loads(out)
                    stats = json.loads(sh([str(CUTOVER), "workload", "stats", str(record), "--format", "json"],
                                          capture_output=True).stdout)
                    cmds = stats["commands"]
                    recorded = cmds.get("query", 0) + cmds.get("execute", 0)
                    proxy_stats.append({"cpu_s": round(cpu, 2), "peak_rss_mib": round(hwm, 1),
                                        "records": summary["records"], "dropped": summary["dropped"],
                                        "undecodable": summary["undecodable_connections"],
                                        "statements_recorded": recorded, "statements_run": r["queries"],
                                        "file_mib": round(record.stat().st_size / 2**20, 1)})
                    last_record = record
                runs[mode].append(r)
                print(f"round {rnd + 1} {mode:8} {r['tps']:9.1f} tps  p95 {r['p95_ms']:6.2f} ms", flush=True)

        med = {m: {"tps": statistics.median(x["tps"] for x in v),
                   "p95_ms": statistics.median(x["p95_ms"] for x in v)} for m, v in runs.items()}
        result["median"] = med
        result["proxy"] = proxy_stats
        ratio = lambda a, b: round(med[a]["tps"] / med[b]["tps"], 3)  # noqa: E731
        result["ratios"] = {"cutover/direct": ratio("cutover", "direct"), "cutover/socat": ratio("cutover", "socat"),
                            "socat/direct": ratio("socat", "direct")}

        dsn = lambda p: f"mysql://root@127.0.0.1:{p}/sbtest"  # noqa: E731
        t0 = time.monotonic()
        rep = subprocess.run([str(CUTOVER), "replay", str(last_record), "--target", dsn(tgt), "--baseline", dsn(src),
                              "--read-only", "--speed", "max", "--format", "json"], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if rep.returncode not in (0, 1):
            sys.exit(f"cutover replay failed: {rep.stderr}")
        rj = json.loads(rep.stdout)
        result["replay"] = {"statements": rj["replayed"], "seconds": round(wall, 2),
                            "statements_with_diffs": rj["statements_with_diffs"],
                            "client_compatibility": [k["kind"] for k in rj.get("client_compatibility", [])],
                            "session_errors": len(rj["session_errors"])}

        print()
        print(f"{'':10}{'tps (median)':>14}{'p95 ms':>10}")
        for m in ("direct", "socat", "cutover"):
            print(f"{m:10}{med[m]['tps']:14.1f}{med[m]['p95_ms']:10.2f}")
        print(f"cutover proxy / direct: {result['ratios']['cutover/direct']:.3f}   "
              f"cutover proxy / socat: {result['ratios']['cutover/socat']:.3f}   "
              f"socat / direct: {result['ratios']['socat/direct']:.3f}")
        for i, s in enumerate(proxy_stats):
            whole = "WHOLE" if (s["dropped"] == 0 and s["undecodable"] == 0
                                and s["statements_recorded"] == s["statements_run"]) else "INCOMPLETE"
            print(f"proxy run {i + 1}: {s['statements_recorded']} of {s['statements_run']} statements recorded "
                  f"({whole}), {s['dropped']} dropped, {s['undecodable']} undecodable, CPU {s['cpu_s']} s, "
                  f"peak RSS {s['peak_rss_mib']} MiB, workload {s['file_mib']} MiB")
        rp = result["replay"]
        print(f"replay of the last recording vs the baseline: {rp['statements']} statements in {rp['seconds']} s, "
              f"{rp['statements_with_diffs']} with differences, {rp['session_errors']} sessions stopped")
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        path = out / f"proxy-{datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"results: {path}")
        ok = all(s["dropped"] == 0 and s["undecodable"] == 0 and s["statements_recorded"] == s["statements_run"]
                 for s in proxy_stats) and rp["statements_with_diffs"] == 0
        sys.exit(0 if ok else 1)
    finally:
        if not args.keep:
            subprocess.run([str(CUTOVER), "sandbox", "down", "--dir", str(sandbox)], capture_output=True)
            shutil.rmtree(sandbox, ignore_errors=True)


if __name__ == "__main__":
    main()
