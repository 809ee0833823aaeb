#!/usr/bin/env python3
"""Benchmark `cutover verify`: does it keep up with the fastest write load this machine sustains?

A fresh sandbox pair with native replication (target = replica of the source), sysbench
tables prepared on the source (replicated to the target), then `cutover verify` follows the
source's binlog while `sysbench oltp_write_only` runs at full speed (no --rate) for --time
seconds. Metrics are scraped every second. When the workload ends, verify is given --drain
seconds to empty its pending set, then stopped with SIGTERM.

Prints: the workload's transactions/s and row changes/s (verify's own count of row events),
rows checked and verified per second, the pending set over time, verification lag p50/p99
(from a change being read to its row seen equal on both sides), source lag, peak RSS of
verify, and whether it kept up (rows verified/s >= rows changed/s, pending drained). Results
also go to bench/out/verify-<date>.json.

Usage: python3 bench/verify.py [--time 60] [--threads 4] [--tables 4] [--table-size 100000]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUTOVER = ROOT / "target" / "release" / "cutover"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True, **kw)


def ensure_tools():
    apt = {"sysbench": "sysbench", "mariadbd": "mariadb-server", "mariadb": "mariadb-client"}
    missing = sorted({pkg for exe, pkg in apt.items() if not shutil.which(exe)})
    if missing:
        print(f"installing {' '.join(missing)}", flush=True)
        sh(["apt-get", "update"])
        sh(["apt-get", "install", "-y", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def mariadb(port, sql, db="mysql", names=False):
    return sh(["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", *([] if names else ["-N"]), "-e", sql, db],
              capture_output=True).stdout.strip()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def peak_rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_caught_up(src, tgt, deadline=600):
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        file, pos = mariadb(src, "SHOW MASTER STATUS").split("\t")[:2]
        st = mariadb(tgt, "SHOW SLAVE STATUS\\G", names=True)
        m = dict(re.findall(r"^\s*(\w+): (.*)$", st, re.M))
        if m.get("Relay_Master_Log_File") == file and m.get("Exec_Master_Log_Pos") == pos:
            return
        time.sleep(0.2)
    sys.exit("the replica did not catch up")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time", type=int, default=60, help="workload seconds")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--tables", type=int, default=4)
    ap.add_argument("--table-size", type=int, default=100_000)
    ap.add_argument("--drain", type=int, default=120, help="seconds allowed to empty the pending set")
    args = ap.parse_args()
    ensure_tools()
    sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    sandbox = Path(tempfile.mkdtemp(prefix="cutover-bench-verify-"))
    up = json.loads(sh([str(CUTOVER), "sandbox", "up", "--dir", str(sandbox), "--buffer-pool-mb", "1024",
                        "--format", "json"], capture_output=True).stdout)
    src, tgt = up["source"]["port"], up["target"]["port"]
    verify = None
    try:
        file, pos = mariadb(src, "SHOW MASTER STATUS").split("\t")[:2]
        mariadb(tgt, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={src}, MASTER_USER='root', "
                     f"MASTER_PASSWORD='', MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, "
                     f"MASTER_USE_GTID=no; START SLAVE")
        mariadb(src, "CREATE DATABASE sbtest")
        sb = ["sysbench", "oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
              f"--mysql-port={src}", "--mysql-user=root", "--mysql-db=sbtest",
              f"--tables={args.tables}", f"--table-size={args.table_size}"]
        t0 = time.monotonic()
        sh(sb + ["prepare"], stdout=subprocess.DEVNULL)
        wait_caught_up(src, tgt)
        print(f"sandbox {sandbox}: {args.tables} x {args.table_size} rows replicated in "
              f"{time.monotonic() - t0:.0f}s", flush=True)

        mport = free_port()
        out = sandbox / "verify-out"
        verify = subprocess.Popen(
            [str(CUTOVER), "verify", "--source", f"mysql://root@127.0.0.1:{src}",
             "--target", f"mysql://root@127.0.0.1:{tgt}", "--tables", "sbtest.*",
             "--metrics-addr", f"127.0.0.1:{mport}", "--format", "json", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        until = time.monotonic() + 30
        while not scrape(mport):
            if time.monotonic() > until or verify.poll() is not None:
                sys.exit(f"verify did not start: {verify.stderr.read() if verify.poll() is not None else ''}")
            time.sleep(0.1)

        samples = []
        work = subprocess.Popen(sb + [f"--threads={args.threads}", f"--time={args.time}", "--report-interval=0",
                                      "run"], stdout=subprocess.PIPE, text=True)
        w0 = time.monotonic()
        before = scrape(mport)
        while work.poll() is None:
            time.sleep(1)
            m = scrape(mport)
            samples.append({"t": round(time.monotonic() - w0, 1),
                            "changes": m.get("cutover_verify_changes_total", 0),
                            "merged": m.get("cutover_verify_merged_total", 0),
                            "verified": m.get("cutover_verify_rows_verified_total", 0),
                            "checked": m.get("cutover_verify_rows_checked_total", 0),
                            "pending": m.get("cutover_verify_pending", 0),
                            "source_lag_s": m.get("cutover_verify_source_lag_seconds", 0)})
        wall = time.monotonic() - w0
        at_end = scrape(mport)
        report = work.stdout.read()
        tps = float(re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", report)[1])
        # Drain: the replica and verify catch up with what the workload wrote.
        wait_caught_up(src, tgt)
        d0 = time.monotonic()
        final = at_end
        while time.monotonic() - d0 < args.drain:
            final = scrape(mport)
            if final.get("cutover_verify_pending", 1) == 0 and \
                    final.get("cutover_verify_changes_total", 0) >= at_end.get("cutover_verify_changes_total", 0):
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - d0
        rss = peak_rss_kib(verify.pid)
        verify.send_signal(signal.SIGTERM)
        stdout, stderr = verify.communicate(timeout=60)
        summary = json.loads(stdout)

        d = lambda k: at_end.get(k, 0) - before.get(k, 0)
        changes_s = d("cutover_verify_changes_total") / wall
        # A change to a key already pending is checked with it: the rows to verify are the rest.
        to_verify_s = (d("cutover_verify_changes_total") - d("cutover_verify_merged_total")) / wall
        verified_s = d("cutover_verify_rows_verified_total") / wall
        checked_s = d("cutover_verify_rows_checked_total") / wall
        max_pending = max((s["pending"] for s in samples), default=0)
        max_source_lag = max((s["source_lag_s"] for s in samples), default=0)
        kept_up = final.get("cutover_verify_pending", 1) == 0 and summary["mismatches"] == []
        res = {
            "date": datetime.now().isoformat(timespec="seconds"),
            "workload": {"tool": "sysbench oltp_write_only", "threads": args.threads, "tables": args.tables,
                         "table_size": args.table_size, "seconds": round(wall, 1), "tps": tps},
            "row_changes_per_s": round(changes_s), "rows_to_verify_per_s": round(to_verify_s),
            "rows_checked_per_s": round(checked_s),
            "rows_verified_per_s": round(verified_s), "max_pending": max_pending,
            "drain_s": round(drain_s, 1), "max_source_lag_s": max_source_lag,
            "lag_ms": summary.get("lag"), "peak_rss_mib": round(rss / 1024, 1),
            "confirmed_mismatches": len(summary["mismatches"]), "events": summary["events"],
            "kept_up": kept_up, "samples": samples,
        }
        print(f"\nworkload: sysbench oltp_write_only, {args.threads} threads, {wall:.0f}s, {tps:.0f} tps")
        print(f"row changes/s (binlog rows):  {changes_s:10.0f}")
        print(f"  of which to verify/s:       {to_verify_s:10.0f}   (the rest merged into a key already pending)")
        print(f"rows checked/s:               {checked_s:10.0f}")
        print(f"rows verified/s (seen equal): {verified_s:10.0f}   ratio to rows to verify: {verified_s / max(to_verify_s, 1):.2f}")
        print(f"pending: max {max_pending:.0f} during the run, drained {drain_s:.1f}s after the replica caught up")
        lag = summary.get("lag") or {}
        print(f"verification lag (read -> seen equal): p50 {lag.get('p50_ms')} ms, p99 {lag.get('p99_ms')} ms, "
              f"max {lag.get('max_ms')} ms over {lag.get('count')} rows")
        print(f"source lag (commit -> read): max {max_source_lag:.0f} s (1 s resolution)")
        print(f"peak RSS of cutover verify: {rss / 1024:.1f} MiB")
        print(f"confirmed mismatches: {len(summary['mismatches'])} (expected 0)")
        print(("PASS" if verified_s >= to_verify_s * 0.98 and kept_up else "FAIL") +
              "  rows verified/s >= rows changed/s (repeats of a pending key count once), pending drained")
        odir = ROOT / "bench" / "out"
        odir.mkdir(parents=True, exist_ok=True)
        path = odir / f"verify-{datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(res, indent=2) + "\n")
        print(f"written {path.relative_to(ROOT)}")
    finally:
        if verify and verify.poll() is None:
            verify.kill()
        subprocess.run([str(CUTOVER), "sandbox", "down", "--dir", str(sandbox)], capture_output=True)
        shutil.rmtree(sandbox, ignore_errors=True)


if __name__ == "__main__":
    main()
