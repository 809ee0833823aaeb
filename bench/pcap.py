#!/usr/bin/env python3
"""Benchmark `cutover capture --from pcap`: fidelity against `cutover proxy`, damaged captures, speed.

A fresh sandbox; sysbench tables on the source; `sysbench oltp_read_write --db-ps-mode=auto`
for --time seconds through `cutover proxy` (recording) while `tcpdump -i lo -U` captures the
proxy's port (Debian tcpdump). Then:

1. fidelity: the pcap's workload against the proxy's, session by session (every command, SQL,
   statement id, parameters, rows, affected rows, error code);
2. damaged copies of the pcap: its first --cut of packets cut off (a capture started
   mid-session), and --loss of packets dropped, --dup duplicated, --swap moved one place
   (loss and reordering): each decoded, its gaps and mid-stream sessions reported, and its
   records compared with the clean capture's (identical / without an answer / other answer /
   parameters lost / not found);
3. speed: capture wall time, MB/s and records/s (the best of --runs).

Prints all of it and writes bench/out/pcap-<date>.json.

Usage: python3 bench/pcap.py [--time 10] [--threads 4] [--tables 2] [--table-size 10000]
                             [--loss 0.01] [--dup 0.01] [--swap 0.01] [--cut 0.3] [--runs 3]
                             [--binary PATH]   (default: builds target/release/cutover)
"""

import argparse
import collections
import json
import random
import signal
import struct
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from traffic import (ROOT, clean_up, ensure_tools, free_port, records, sh, start_tcpdump, stop_tcpdump,
                     write_results)


def read_pcap(path):
    data = Path(path).read_bytes()
    header, at, frames = data[:24], 24, []
    while at + 16 <= len(data):
        caplen = struct.unpack("<I", data[at + 8:at + 12])[0]
        if at + 16 + caplen > len(data):
            break
        frames.append(data[at:at + 16 + caplen])
        at += 16 + caplen
    return header, frames


def write_pcap(path, header, frames):
    Path(path).write_bytes(header + b"".join(frames))


def essentials(r):
    resp = r.get("response") or {}
    return (r["cmd"], r.get("sql"), r.get("stmt"), json.dumps(r.get("params")), r.get("database"),
            resp.get("rows"), resp.get("affected_rows"), (resp.get("error") or {}).get("code"))


def capture(cutover, pcap, port, out):
    t0 = time.monotonic()
    res = sh([cutover, "capture", "--from", "pcap", "--input", pcap, "--port", str(port), "--output", out,
              "--format", "json"], capture_output=True)
    return json.loads(res.stdout), time.monotonic() - t0


def compare(clean, damaged):
    """Records of `damaged` against `clean`, matched by start time, command, statement id
    and SQL (session ids differ when connections are missing)."""
    def key(r):
        return r["ts_us"], r["cmd"], r.get("stmt"), r.get("sql")
    ref = {key(r): essentials(r) for rs in clean.values() for r in rs}
    stats = collections.Counter()
    for rs in damaged.values():
        for r in rs:
            x, y = essentials(r), ref.get(key(r))
            if y is None:
                stats["not found"] += 1
            elif x == y:
                stats["identical"] += 1
            elif x[:3] == y[:3] and x[4:] == y[4:]:
                stats["parameters lost"] += 1
            elif x[5:] == (None, None, None):
                stats["without an answer"] += 1
            else:
                stats["other answer"] += 1
    return dict(stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--tables", type=int, default=2)
    ap.add_argument("--table-size", type=int, default=10_000)
    ap.add_argument("--loss", type=float, default=0.01)
    ap.add_argument("--dup", type=float, default=0.01)
    ap.add_argument("--swap", type=float, default=0.01)
    ap.add_argument("--cut", type=float, default=0.3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", help="a cutover binary (default: build the release one)")
    ap.add_argument("--keep", action="store_true", help="keep the pcaps and workloads (printed)")
    args = ap.parse_args()
    ensure_tools({"sysbench": "sysbench", "mariadbd": "mariadb-server", "mariadb": "mariadb-client",
                  "tcpdump": "tcpdump"})
    if args.binary:
        cutover = str(Path(args.binary).resolve())
    else:
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
        cutover = str(ROOT / "target" / "release" / "cutover")
    work = Path(tempfile.mkdtemp(prefix="cutover-bench-pcap-"))
    sandbox = work / "sandbox"
    up = json.loads(sh([cutover, "sandbox", "up", "--dir", str(sandbox), "--format", "json"],
                       capture_output=True).stdout)
    src = up["source"]["port"]
    proxy = tcpdump = None
    try:
        sh(["mariadb", "-h127.0.0.1", f"-P{src}", "-uroot", "--skip-ssl", "-e", "CREATE DATABASE sbtest"])
        sb = ["sysbench", "oltp_read_write", "--db-driver=mysql", "--mysql-host=127.0.0.1",
              "--mysql-user=root", "--mysql-db=sbtest", "--mysql-ssl=off",
              f"--tables={args.tables}", f"--table-size={args.table_size}"]
        sh(sb + [f"--mysql-port={src}", "prepare"], stdout=subprocess.DEVNULL)
        listen = free_port()
        pcap, proxied = work / "run.pcap", work / "proxy.cwl"
        tcpdump = start_tcpdump(pcap, listen)
        proxy = subprocess.Popen([cutover, "proxy", "--listen", f"127.0.0.1:{listen}", "--upstream",
                                  f"127.0.0.1:{src}", "--output", str(proxied), "--format", "json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["mariadb", "-h127.0.0.1", f"-P{listen}", "-uroot", "--skip-ssl", "-e", "SELECT 1"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("the proxy did not come up")
            time.sleep(0.1)
        run = sh(sb + [f"--mysql-port={listen}", "--db-ps-mode=auto", f"--threads={args.threads}",
                       f"--time={args.time}", "run"], capture_output=True).stdout
        tps = next((l.split("(")[1].split()[0] for l in run.splitlines() if "transactions:" in l), "?")
        stop_tcpdump(tcpdump, pcap)
        proxy.send_signal(signal.SIGTERM)
        proxy_summary = json.loads(proxy.communicate(timeout=60)[0])
        size_mb = pcap.stat().st_size / 1e6

        result = {"date": datetime.now().isoformat(timespec="seconds"), "sysbench_tps": tps,
                  "threads": args.threads, "time_s": args.time, "pcap_mb": round(size_mb, 1),
                  "proxy": proxy_summary}
        out = work / "pcap.cwl"
        times = []
        for _ in range(max(1, args.runs)):
            summary, secs = capture(cutover, str(pcap), listen, str(out))
            times.append(secs)
        best = min(times)
        clean, from_proxy = records(cutover, str(out)), records(cutover, str(proxied))
        a = sorted([essentials(r) for r in rs] for rs in clean.values())
        b = sorted([essentials(r) for r in rs] for rs in from_proxy.values() if rs)
        same = a == b
        result["clean"] = {"summary": summary, "capture_s": round(best, 3),
                           "mb_per_s": round(size_mb / best, 1),
                           "records_per_s": round(summary["records"] / best),
                           "sessions": len(clean), "equals_proxy": same}
        print(f"sysbench oltp_read_write --db-ps-mode=auto, {args.threads} threads, {args.time} s: {tps} tps; "
              f"pcap {size_mb:.1f} MB, {summary['packets']} packets")
        print(f"clean capture: {summary['records']} records in {len(clean)} sessions, "
              f"{summary['gaps']} gaps; equals the proxy's workload: {same}")
        print(f"speed: {best:.2f} s (best of {len(times)}): {size_mb / best:.1f} MB/s, "
              f"{summary['records'] / best:.0f} records/s")

        header, frames = read_pcap(pcap)
        rng = random.Random(8)
        late = frames[int(len(frames) * args.cut):]
        damaged, lost, doubled, moved = [], 0, 0, 0
        for f in frames:
            x = rng.random()
            if x < args.loss:
                lost += 1
            elif x < args.loss + args.dup:
                damaged += [f, f]
                doubled += 1
            elif x < args.loss + args.dup + args.swap and damaged:
                damaged.insert(len(damaged) - 1, f)
                moved += 1
            else:
                damaged.append(f)
        for name, fr, what in [("late", late, f"first {args.cut:.0%} of packets cut"),
                               ("damaged", damaged, f"{lost} packets lost, {doubled} doubled, {moved} moved")]:
            path = work / f"{name}.pcap"
            write_pcap(path, header, fr)
            s, _ = capture(cutover, str(path), listen, str(work / f"{name}.cwl"))
            cmp = compare(clean, records(cutover, str(work / f"{name}.cwl")))
            result[name] = {"what": what, "summary": s, "against_clean": cmp}
            print(f"{name} ({what}): {s['records']} records, {s['mid_stream_sessions']} mid-stream sessions, "
                  f"{s['unknown_statement_executes']} executes of unknown statements, {s['gaps']} gaps "
                  f"({s['bytes_lost']} bytes lost), {s['damaged_sessions']} damaged sessions; against the clean "
                  f"capture: {cmp}")
        write_results("pcap", result)
    finally:
        for p in (proxy, tcpdump):
            if p and p.poll() is None:
                p.kill()
        clean_up(cutover, sandbox, work, args.keep)


if __name__ == "__main__":
    main()
