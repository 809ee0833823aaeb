#!/usr/bin/env python3
"""Benchmark `cutover check` on many tables: 10,000 tables across 10 databases (by default)
on a fresh sandbox, then `cutover check` over all of them, timed.

The tables come in three shapes, a third each: an INT AUTO_INCREMENT key with a string column
(the counter is read from information_schema), a BIGINT key without a counter holding a few
rows (its largest value is read with MAX(), batched), and a table with a composite key, a
descending index and a JSON column. The check must finish in under 30 s (the acceptance
target of issue 5). Results go to bench/out/check-<date>.json (git-ignored).

With --workload-statements N, the workload case instead: a workload file of N statements
(64 sessions of short transactions, prepared statements executed many times, some prepared
and closed per execute, a few hot keys, and a known number of statements TiDB treats
differently) is written, then `cutover check --workload` reads it, timed, with its peak
memory. It must finish in under 30 s and 200 MiB for 1M statements (issue 21), and find
exactly the planted patterns.

With --binlog-mib N, the binlog case: N × 10 rows of 100 KiB (100 to a transaction)
written on the sandbox source, then `cutover check --binlog-from` reads them; it must read at
least 50 MiB/s (issue 21) and count every byte.

Usage: python3 bench/check.py [--databases 10] [--tables-per-db 1000] [--runs 3] [--keep]
       [--binary target/release/cutover]
       python3 bench/check.py --workload-statements 1000000 [--runs 3] [--binary ...]
       python3 bench/check.py --binlog-mib 1000 [--runs 3] [--binary ...]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0
TARGET_RSS_MIB = 200.0
TARGET_BINLOG_MIB_S = 50.0


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def table_sql(db, i):
    shape = i % 3
    name = f"t{i:05d}"
    if shape == 0:
        return (f"CREATE TABLE `{db}`.`{name}` (id INT AUTO_INCREMENT PRIMARY KEY, "
                f"name VARCHAR(64) NOT NULL, created DATETIME NOT NULL, KEY (created)) "
                f"AUTO_INCREMENT = {1000 + i};")
    if shape == 1:
        return (f"CREATE TABLE `{db}`.`{name}` (id BIGINT PRIMARY KEY, v VARBINARY(32)); "
                f"INSERT INTO `{db}`.`{name}` VALUES ({i}, 'a'), ({i * 1000 + 7}, 'b');")
    return (f"CREATE TABLE `{db}`.`{name}` (a INT NOT NULL, b INT NOT NULL, doc JSON, "
            f"note TEXT COLLATE utf8mb4_bin, PRIMARY KEY (a, b), KEY b_desc (b DESC));")


def load(port, db, n):
    """Creates one database of n tables through one client session."""
    stmts = [f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`;"]
    stmts += [table_sql(db, i) for i in range(n)]
    sh(["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot"], input="\n".join(stmts))


def write_workload(path, statements, sessions=64):
    """Writes a workload of about `statements` statements; returns the planted counts."""
    import gzip
    planted = {"workload.lock_in_share_mode": 0, "workload.sql_calc_found_rows": 0,
               "workload.range_lock_insert": 0, "prepared_churn_executes": 0}
    ts = 1_700_000_000_000_000
    n = 0
    rnd = 12345

    def rand(k):
        nonlocal rnd
        rnd = (rnd * 1103515245 + 12345) % (1 << 31)
        return rnd % k

    with gzip.open(path, "wt", compresslevel=1) as f:
        f.write(json.dumps({"format": "cutover-workload", "version": 1, "source": "bench"}) + "\n")

        def rec(session, **kw):
            nonlocal ts
            ts += 20  # 50,000 statements a second
            kw.update(session=session, ts_us=ts, db="shop")
            f.write(json.dumps(kw, separators=(",", ":")) + "\n")

        for s in range(sessions):
            rec(s, cmd="connect", user="app")
            rec(s, cmd="prepare", stmt=1, sql="SELECT name, price FROM item WHERE id = ?")
        stmt_ids = [10] * sessions
        while n < statements:
            s = rand(sessions)
            kind = rand(100)
            if kind < 40:
                rec(s, cmd="execute", stmt=1, params=[rand(1_000_000)])
                n += 1
            elif kind < 80:
                acct = rand(10_000_000)
                for sql in ["BEGIN", f"SELECT bal FROM acct WHERE id = {acct} FOR UPDATE",
                            f"UPDATE acct SET bal = bal - {rand(100)} WHERE id = {acct}",
                            f"INSERT INTO ledger (acct, amount) VALUES ({acct}, -1)", "COMMIT"]:
                    rec(s, cmd="query", sql=sql)
                    n += 1
            elif kind < 90:
                # A few hot keys, written by every session.
                rec(s, cmd="query", sql=f"UPDATE counter SET n = n + 1 WHERE name = 'c{rand(4)}'")
                n += 1
            elif kind < 95:
                stmt_ids[s] += 1
                rec(s, cmd="prepare", stmt=stmt_ids[s], sql="SELECT qty FROM stock WHERE sku = ?")
                rec(s, cmd="execute", stmt=stmt_ids[s], params=[f"SKU-{rand(1000)}"])
                rec(s, cmd="close", stmt=stmt_ids[s])
                planted["prepared_churn_executes"] += 1
                n += 1
            elif kind < 97:
                rec(s, cmd="query", sql=f"SELECT * FROM item WHERE id = {rand(1000)} LOCK IN SHARE MODE")
                planted["workload.lock_in_share_mode"] += 1
                n += 1
            elif kind < 98:
                rec(s, cmd="query", sql=f"SELECT SQL_CALC_FOUND_ROWS * FROM item LIMIT {rand(50)}")
                planted["workload.sql_calc_found_rows"] += 1
                n += 1
            else:
                day = rand(300)
                for sql in ["BEGIN", f"SELECT * FROM slot WHERE day BETWEEN {day} AND {day + 7} FOR UPDATE",
                            f"INSERT INTO slot (day) VALUES ({day + 1})", "COMMIT"]:
                    rec(s, cmd="query", sql=sql)
                    n += 1
                planted["workload.range_lock_insert"] += 1
        for s in range(sessions):
            rec(s, cmd="quit")
    planted["statements"] = n
    return planted


def measured(cmd):
    """Runs cmd in a child Python that reports the command's wall time and peak RSS (MiB)."""
    probe = ("import json,resource,subprocess,sys,time;t=time.monotonic();"
             "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
             "print(json.dumps({'rc':p.returncode,'s':time.monotonic()-t,"
             "'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
             "'out':p.stdout,'err':p.stderr}))")
    p = subprocess.run([sys.executable, "-c", probe] + cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def workload_case(args, binary):
    tmp = Path(tempfile.mkdtemp(prefix="cutover-bench-check-workload-"))
    try:
        path = tmp / "bench.cwl"
        t0 = time.monotonic()
        planted = write_workload(path, args.workload_statements)
        print(f"wrote {planted['statements']} statements ({path.stat().st_size / 1e6:.1f} MB) "
              f"in {time.monotonic() - t0:.1f} s")
        times, rss, report = [], [], None
        load = os.getloadavg()[0]
        for run in range(args.runs):
            m = measured([str(binary), "check", "--workload", str(path), "--format", "json"])
            if m["rc"] not in (0, 1):
                sys.exit(f"cutover check failed ({m['rc']}): {m['err']}")
            report = json.loads(m["out"])
            times.append(m["s"])
            rss.append(m["rss"])
            print(f"run {run + 1}: {m['s']:.2f} s, peak RSS {m['rss']:.0f} MiB")
        w = report["summary"]["workload"]
        wrong = []
        if w["statements"] != planted["statements"]:
            wrong.append(f"read {w['statements']} statements, wrote {planted['statements']}")
        for rule in ["workload.lock_in_share_mode", "workload.sql_calc_found_rows",
                     "workload.range_lock_insert"]:
            got = sum(f["evidence"]["statements"] for f in report["findings"] if f["rule"] == rule)
            if got != planted[rule]:
                wrong.append(f"{rule}: {got}, planted {planted[rule]}")
        churn = [f for f in report["findings"] if f["rule"] == "workload.prepared_churn"]
        if planted["prepared_churn_executes"] >= 10 and not churn:
            wrong.append("no workload.prepared_churn")
        if not [f for f in report["findings"] if f["rule"] == "workload.hot_rows"]:
            wrong.append("no workload.hot_rows")
        if wrong:
            sys.exit("WRONG RESULT: " + "; ".join(wrong))
        median = statistics.median(times)
        peak = max(rss)
        verdict = "PASS" if median < TARGET_SECONDS and peak < TARGET_RSS_MIB else "FAIL"
        print(f"cutover check --workload: {w['statements']} statements, {w['sessions']} sessions, "
              f"{w['transactions']} transactions, {len(report['findings'])} findings; "
              f"median {median:.2f} s (target < {TARGET_SECONDS:.0f} s), peak RSS {peak:.0f} MiB "
              f"(target < {TARGET_RSS_MIB:.0f} MiB), load average {load:.1f} before: {verdict}")
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        result = {"case": "workload", "statements": w["statements"], "runs": times,
                  "median_s": median, "peak_rss_mib": peak,
                  "findings": len(report["findings"]), "load": load, "verdict": verdict}
        rpath = out / f"check-workload-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        rpath.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {rpath}")
        if verdict != "PASS":
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def binlog_case(args, binary, port):
    """Writes args.binlog_mib MiB through the binlog and times `check --binlog-from`."""
    mysql = ["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", "-N", "-B"]
    status = sh(mysql, input="SHOW MASTER STATUS;", capture_output=True).stdout.split()
    start = f"{status[0]}:{status[1]}"
    rows = args.binlog_mib * 10
    stmts = ["DROP DATABASE IF EXISTS bench_binlog; CREATE DATABASE bench_binlog;",
             "CREATE TABLE bench_binlog.t (id INT PRIMARY KEY, b LONGBLOB);"]
    for lo in range(1, rows + 1, 100):
        hi = min(lo + 99, rows)
        stmts.append(f"INSERT INTO bench_binlog.t SELECT seq, REPEAT('x', 102400) "
                     f"FROM bench_binlog.seq_{lo}_to_{hi};")
    t0 = time.monotonic()
    sh(mysql, input="\n".join(stmts))
    print(f"wrote {args.binlog_mib} MiB from {start} in {time.monotonic() - t0:.1f} s")
    dsn = f"mysql://root@127.0.0.1:{port}"
    times, rss, summary = [], [], None
    load = os.getloadavg()[0]
    for run in range(args.runs):
        m = measured([str(binary), "check", "--source", dsn, "--databases", "bench_binlog",
                      "--binlog-from", start, "--format", "json"])
        if m["rc"] not in (0, 1):
            sys.exit(f"cutover check failed ({m['rc']}): {m['err']}")
        summary = json.loads(m["out"])["summary"]["transactions"]
        times.append(m["s"])
        rss.append(m["rss"])
        print(f"run {run + 1}: {m['s']:.2f} s, {summary['bytes'] / m['s'] / 2**20:.0f} MiB/s, "
              f"peak RSS {m['rss']:.0f} MiB")
    if summary["bytes"] < rows * 102400:
        sys.exit(f"WRONG RESULT: read {summary['bytes']} bytes, wrote {rows * 102400} bytes of rows")
    median = statistics.median(times)
    rate = summary["bytes"] / median / 2**20
    verdict = "PASS" if rate >= TARGET_BINLOG_MIB_S else "FAIL"
    print(f"cutover check --binlog-from: {summary['bytes'] / 2**20:.0f} MiB, "
          f"{summary['transactions']} transactions; median {median:.2f} s = {rate:.0f} MiB/s "
          f"(target >= {TARGET_BINLOG_MIB_S:.0f} MiB/s), peak RSS {max(rss):.0f} MiB, "
          f"load average {load:.1f} before: {verdict}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    rpath = out / f"check-binlog-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    rpath.write_text(json.dumps({"case": "binlog", "bytes": summary["bytes"], "runs": times,
                                 "mib_per_s": rate, "peak_rss_mib": max(rss), "load": load,
                                 "verdict": verdict}, indent=2) + "\n")
    print(f"results: {rpath}")
    if verdict != "PASS":
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--databases", type=int, default=10)
    ap.add_argument("--tables-per-db", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cutover"))
    ap.add_argument("--workload-statements", type=int, default=0,
                    help="run the workload case with this many statements instead")
    ap.add_argument("--binlog-mib", type=int, default=0,
                    help="run the binlog case with this many MiB of rows instead")
    args = ap.parse_args()

    binary = Path(args.binary)
    if binary == ROOT / "target" / "release" / "cutover":
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    if not binary.exists():
        sys.exit(f"{binary} does not exist")
    if args.workload_statements > 0:
        workload_case(args, binary)
        return
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        sh(["bash", "-c", f"source {ROOT}/scripts/lib.sh && ensure_packages mariadbd:mariadb-server mariadb:mariadb-client"], cwd=ROOT)

    tmp = Path(tempfile.mkdtemp(prefix="cutover-bench-check-"))
    sb = tmp / "sb"
    sh([str(binary), "sandbox", "up", "--dir", str(sb), "--buffer-pool-mb", "256"],
       stdout=subprocess.DEVNULL)
    try:
        port = json.loads((sb / "sandbox.json").read_text())["source"]["port"]
        if args.binlog_mib > 0:
            binlog_case(args, binary, port)
            return
        total = args.databases * args.tables_per_db
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda d: load(port, f"bench_check_{d:02d}", args.tables_per_db),
                          range(args.databases)))
        print(f"created {total} tables in {args.databases} databases in {time.monotonic() - t0:.1f} s")

        dsn = f"mysql://root@127.0.0.1:{port}"
        times, report = [], None
        for run in range(args.runs):
            t = time.monotonic()
            p = subprocess.run([str(binary), "check", "--source", dsn, "--format", "json"],
                               capture_output=True, text=True)
            elapsed = time.monotonic() - t
            if p.returncode not in (0, 1):
                sys.exit(f"cutover check failed ({p.returncode}): {p.stderr}")
            report = json.loads(p.stdout)
            times.append(elapsed)
            print(f"run {run + 1}: {elapsed:.2f} s")
        s = report["summary"]
        if s["tables"] != total:
            sys.exit(f"WRONG RESULT: checked {s['tables']} tables, expected {total}")
        median = statistics.median(times)
        verdict = "PASS" if median < TARGET_SECONDS else "FAIL"
        print(f"cutover check: {total} tables, {s['id_spaces']} ID spaces, "
              f"{len(report['findings'])} findings; median {median:.2f} s, min {min(times):.2f} s "
              f"(target < {TARGET_SECONDS:.0f} s): {verdict}")
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        result = {"tables": total, "databases": args.databases, "runs": times,
                  "median_s": median, "findings": len(report["findings"]),
                  "id_spaces": s["id_spaces"], "verdict": verdict}
        path = out / f"check-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {path}")
        if verdict != "PASS":
            sys.exit(1)
    finally:
        if args.keep:
            print(f"sandbox kept in {sb}")
        else:
            subprocess.run([str(binary), "sandbox", "down", "--dir", str(sb)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
