#!/usr/bin/env python3
"""Benchmark `cutover check` on many tables: 10,000 tables across 10 databases (by default)
on a fresh sandbox, then `cutover check` over all of them, timed.

The tables come in three shapes, a third each: an INT AUTO_INCREMENT key with a string column
(the counter is read from information_schema), a BIGINT key without a counter holding a few
rows (its largest value is read with MAX(), batched), and a table with a composite key, a
descending index and a JSON column. The check must finish in under 30 s (the acceptance
target of issue 5). Results go to bench/out/check-<date>.json (git-ignored).

Usage: python3 bench/check.py [--databases 10] [--tables-per-db 1000] [--runs 3] [--keep]
       [--binary target/release/cutover]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--databases", type=int, default=10)
    ap.add_argument("--tables-per-db", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cutover"))
    args = ap.parse_args()

    binary = Path(args.binary)
    if binary == ROOT / "target" / "release" / "cutover":
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    if not binary.exists():
        sys.exit(f"{binary} does not exist")
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        sh(["bash", "-c", f"source {ROOT}/scripts/lib.sh && ensure_packages mariadbd:mariadb-server mariadb:mariadb-client"], cwd=ROOT)

    tmp = Path(tempfile.mkdtemp(prefix="cutover-bench-check-"))
    sb = tmp / "sb"
    sh([str(binary), "sandbox", "up", "--dir", str(sb), "--buffer-pool-mb", "256"],
       stdout=subprocess.DEVNULL)
    try:
        port = json.loads((sb / "sandbox.json").read_text())["source"]["port"]
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
