#!/usr/bin/env python3
"""Count what recording costs per statement, in instructions (callgrind), for one or two cutover binaries.

Wall-clock throughput on a shared, loaded machine swings from run to run; the instructions a
decoder executes do not. So this script measures the recording cost of `cutover proxy` as
instructions per recorded statement:

1. capture: sysbench `oltp_read_only --db-ps-mode=auto` (server-side prepared statements in
   the binary protocol) runs against a sandbox server while `tcpdump -i lo` records its port
   (or a pcap given with --pcap is reused). `cutover capture --from pcap` of that pcap runs
   under `valgrind --tool=callgrind` with each binary: it drives the same decoder and recorder
   (`cutover_protocol::Recorder`) the proxy runs per connection, on exactly the same bytes.
   The fixed cost (start-up, a pcap with no packets) is taken off, and the rest divided by the
   statements recorded (queries and executes). The two binaries' records are compared
   (command, SQL, statement id, parameter values, rows, affected rows, error code).
2. proxy: `cutover proxy --record` itself under callgrind relays sysbench runs of a fixed
   number of transactions (`--events`, one thread), N and 2N: the difference divided by the
   difference in recorded statements is the proxy's marginal cost per statement (relay,
   decode, record, write), start-up and the connection's set-up excluded.

It builds nothing: give the binaries. It prints instructions per statement for each binary,
the new/old ratios, and writes bench/out/decode-<date>.json.

Usage: python3 bench/decode.py --binary NEW [--old OLD] [--threads 2] [--seconds 5]
                               [--events 100] [--pcap FILE] [--no-proxy] [--keep]
"""

import argparse
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from traffic import (clean_up, ensure_tools, free_port, records, sh, start_tcpdump, stop_tcpdump,
                     write_results)

TABLES, TABLE_SIZE = 2, 10_000


def sysbench(port, *extra):
    return sh(["sysbench", "oltp_read_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
               f"--mysql-port={port}", "--mysql-user=root", "--mysql-db=sbtest", "--mysql-ssl=off",
               f"--tables={TABLES}", f"--table-size={TABLE_SIZE}", *extra], capture_output=True).stdout


def callgrind(out_file, cmd):
    """`cmd` under callgrind (its total is read from `out_file` afterwards)."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *cmd]


def instructions(out_file):
    """The total of a callgrind output file (its `summary:` or `totals:` line)."""
    for line in Path(out_file).read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no total in {out_file}")


# Where the instructions go, by function (inclusive): decoding and pairing (the recorder fed
# with both directions' bytes) and writing records (JSON and gzip).
# `Recorder::feed` takes either end's bytes; binaries before it had `client` and `server`
# (each end's own function), which capture and the proxy no longer call.
PARTS = {"decode": ("cutover_protocol::record::Recorder::client", "cutover_protocol::record::Recorder::server",
                    "cutover_protocol::record::Recorder::feed"),
         "write": ("cutover_workload::Writer::write",)}


def breakdown(out_file):
    """Inclusive instructions of PARTS' functions in a callgrind output file."""
    # Run from /: callgrind_annotate shortens paths under its working directory and then
    # attributes some inlined code differently.
    text = sh(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", str(Path(out_file).resolve())],
              capture_output=True, cwd="/").stdout
    seen = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) .*?:(\S+) \[", line)
        if m and m.group(2) not in seen:
            seen[m.group(2)] = int(m.group(1).replace(",", ""))
    return {part: sum(seen.get(n, 0) for n in names) for part, names in PARTS.items()}


def param_value(p):
    """A parameter's value, whatever the workload version spelled it as (a bare value, or an
    object holding its type and value)."""
    if isinstance(p, dict):
        for k in ("value", "v"):
            if k in p:
                return param_value(p[k])
        vals = [v for k, v in p.items() if k not in ("type", "t", "unsigned", "u")]
        return param_value(vals[0]) if len(vals) == 1 else json.dumps(p, sort_keys=True)
    if isinstance(p, float) and p.is_integer():
        return int(p)
    if isinstance(p, str):
        try:
            return int(p)
        except ValueError:
            return p
    return p


def essentials(r):
    resp = r.get("response") or {}
    params = [param_value(p) for p in (r.get("params") or [])]
    return (r["cmd"], r.get("sql"), r.get("stmt"), json.dumps(params), resp.get("rows"),
            resp.get("affected_rows"), (resp.get("error") or {}).get("code"))


def statements(cutover, workload):
    cmds = json.loads(sh([cutover, "workload", "stats", str(workload), "--format", "json"],
                         capture_output=True).stdout)["commands"]
    return cmds.get("query", 0) + cmds.get("execute", 0)


def measure_capture(name, cutover, pcap, empty, port, work):
    """Instructions per recorded statement of `capture --from pcap` with one binary."""
    total = {}
    for what, src in (("empty", empty), ("run", pcap)):
        cg, out = work / f"capture-{name}-{what}.cg", work / f"capture-{name}-{what}.cwl"
        sh(callgrind(cg, [cutover, "capture", "--from", "pcap", "--input", str(src), "--port", str(port),
                          "--output", str(out), "--format", "json"]), capture_output=True)
        total[what] = instructions(cg)
    out = work / f"capture-{name}-run.cwl"
    n = statements(cutover, out)
    per = (total["run"] - total["empty"]) / n
    parts = {k: round(v / n, 1) for k, v in breakdown(work / f"capture-{name}-run.cg").items()}
    print(f"capture {name:4}: {total['run']:,} instructions ({total['empty']:,} fixed), {n} statements: "
          f"{per:,.0f} per statement (decode {parts['decode']:,.0f}, write {parts['write']:,.0f})", flush=True)
    return {"instructions": total["run"], "fixed": total["empty"], "statements": n,
            "per_statement": round(per, 1), "parts_per_statement": parts, "workload": out,
            "callgrind": str(work / f"capture-{name}-run.cg")}


def proxy_run(name, cutover, upstream, events, work):
    """`cutover proxy` under callgrind relaying `events` sysbench transactions on one thread."""
    listen = free_port()
    cg, rec = work / f"proxy-{name}-{events}.cg", work / f"proxy-{name}-{events}.cwl"
    p = subprocess.Popen(callgrind(cg, [cutover, "proxy", "--listen", f"127.0.0.1:{listen}", "--upstream",
                                        f"127.0.0.1:{upstream}", "--output", str(rec), "--format", "json"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["mariadb", "-h127.0.0.1", f"-P{listen}", "-uroot", "--skip-ssl", "-e", "SELECT 1"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit(f"the proxy did not come up: {p.stderr.read() if p.poll() is not None else ''}")
            time.sleep(0.2)
        sysbench(listen, "--db-ps-mode=auto", "--threads=1", "--time=0", f"--events={events}", "run")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    if p.returncode != 0:
        raise SystemExit(f"cutover proxy ({name}) failed: {err[-2000:]}")
    summary = json.loads(out)
    return {"instructions": instructions(cg), "statements": statements(cutover, rec), "parts": breakdown(cg),
            "dropped": summary.get("dropped"), "undecodable": summary.get("undecodable_connections")}


def measure_proxy(name, cutover, upstream, events, work):
    small = proxy_run(name, cutover, upstream, events, work)
    large = proxy_run(name, cutover, upstream, 2 * events, work)
    n = large["statements"] - small["statements"]
    per = (large["instructions"] - small["instructions"]) / n
    parts = {k: round((large["parts"][k] - small["parts"][k]) / n, 1) for k in PARTS}
    print(f"proxy   {name:4}: {small['instructions']:,} / {large['instructions']:,} instructions for "
          f"{small['statements']} / {large['statements']} statements: {per:,.0f} per statement "
          f"(decode {parts['decode']:,.0f}, write {parts['write']:,.0f})", flush=True)
    return {"runs": [small, large], "per_statement": round(per, 1), "parts_per_statement": parts}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the cutover binary to measure (the new one)")
    ap.add_argument("--old", help="a cutover binary to compare with")
    ap.add_argument("--threads", type=int, default=2, help="sysbench threads of the recorded run")
    ap.add_argument("--seconds", type=int, default=5, help="length of the recorded run")
    ap.add_argument("--events", type=int, default=100,
                    help="transactions through the proxy under callgrind (runs of N and 2N)")
    ap.add_argument("--pcap", help="reuse this capture (its server port in --port) instead of recording one")
    ap.add_argument("--port", type=int, help="the server port in --pcap")
    ap.add_argument("--no-proxy", action="store_true", help="skip the proxy measurement")
    ap.add_argument("--keep", action="store_true", help="keep the pcap, workloads and callgrind files (printed)")
    args = ap.parse_args()
    ensure_tools({"sysbench": "sysbench", "mariadbd": "mariadb-server", "mariadb": "mariadb-client",
                  "tcpdump": "tcpdump", "valgrind": "valgrind"})
    bins = {"new": str(Path(args.binary).resolve())}
    if args.old:
        bins["old"] = str(Path(args.old).resolve())
    new = bins["new"]
    work = Path(tempfile.mkdtemp(prefix="cutover-bench-decode-"))
    sandbox = work / "sandbox"
    result = {"date": datetime.now().isoformat(timespec="seconds"), "binaries": bins,
              "threads": args.threads, "seconds": args.seconds, "events": args.events}
    need_server = not args.pcap or not args.no_proxy
    tcpdump = None
    try:
        if need_server:
            up = json.loads(sh([new, "sandbox", "up", "--dir", str(sandbox), "--format", "json"],
                               capture_output=True).stdout)
            src = up["source"]["port"]
            sh(["mariadb", "-h127.0.0.1", f"-P{src}", "-uroot", "--skip-ssl", "-e", "CREATE DATABASE sbtest"])
            sysbench(src, "prepare")
            sysbench(src, "--threads=1", "--time=0", "--events=50", "run")  # warm the buffer pool
        if args.pcap:
            pcap, port = Path(args.pcap).resolve(), args.port
            if not port:
                raise SystemExit("--pcap needs --port")
        else:
            pcap, port = work / "run.pcap", src
            tcpdump = start_tcpdump(pcap, port)
            run = sysbench(src, "--db-ps-mode=auto", f"--threads={args.threads}", f"--time={args.seconds}", "run")
            result["sysbench_queries"] = int(re.search(r"total:\s+(\d+)", run).group(1))
            stop_tcpdump(tcpdump, pcap)
        empty = work / "empty.pcap"
        empty.write_bytes(pcap.read_bytes()[:24])  # the pcap header alone: start-up and nothing else
        result["pcap_mb"] = round(pcap.stat().st_size / 1e6, 2)
        print(f"pcap: {result['pcap_mb']} MB, server port {port}", flush=True)

        cap = {name: measure_capture(name, b, pcap, empty, port, work) for name, b in bins.items()}
        if "old" in cap:
            a, b = records(bins["old"], cap["old"]["workload"]), records(new, cap["new"]["workload"])
            ea = sorted([essentials(r) for r in rs] for rs in a.values())
            eb = sorted([essentials(r) for r in rs] for rs in b.values())
            diffs = [(x, y) for sa, sb in zip(ea, eb) for x, y in zip(sa, sb) if x != y]
            result["records_equal"] = ea == eb
            result["record_differences"] = len(diffs) + abs(sum(map(len, ea)) - sum(map(len, eb)))
            result["record_difference_example"] = [list(map(str, d)) for d in diffs[:1]]
            print(f"records: old {sum(map(len, ea))}, new {sum(map(len, eb))}; equal: {ea == eb}"
                  + (f" (first difference: {diffs[0]})" if diffs else ""), flush=True)
        for c in cap.values():
            c["workload"] = str(c["workload"])
        result["capture"] = cap
        if not args.no_proxy:
            result["proxy"] = {name: measure_proxy(name, b, src, args.events, work) for name, b in bins.items()}
        if "old" in bins:
            result["ratio_capture"] = round(cap["new"]["per_statement"] / cap["old"]["per_statement"], 4)
            result["ratio_capture_decode"] = round(cap["new"]["parts_per_statement"]["decode"]
                                                   / cap["old"]["parts_per_statement"]["decode"], 4)
            line = (f"new/old per statement: capture {result['ratio_capture']:.3f} "
                    f"(decode alone {result['ratio_capture_decode']:.3f})")
            if "proxy" in result:
                px = result["proxy"]
                result["ratio_proxy"] = round(px["new"]["per_statement"] / px["old"]["per_statement"], 4)
                line += f", proxy {result['ratio_proxy']:.3f}"
            print(line)
        write_results("decode", result)
    finally:
        if tcpdump and tcpdump.poll() is None:
            tcpdump.kill()
        if need_server:
            clean_up(new, sandbox, work, args.keep)
        elif args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
