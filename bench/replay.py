#!/usr/bin/env python3
"""Benchmark `cutover replay` against pt-upgrade and the floor, on the same slow log.

A sysbench table (--rows rows) is made on the source of a fresh sandbox pair and copied to the
target, which then gets a few differing rows. A sysbench oltp_read_only run (--threads
sessions, --seconds long) on the source is written to the slow log (long_query_time = 0) and
captured with `cutover capture`. Then, against the same two servers:

- cutover: `cutover replay --read-only --speed max --baseline SOURCE --target TARGET`;
- pt-upgrade (Debian percona-toolkit): the same slow log, one query at a time on both hosts;
- the floor: the same statements, without comparing, by parallel `mariadb` clients, one per
  captured session, on both servers at once.

It prints statements per second of each, the statements each found different, cutover's peak
RSS on the workload and on a workload 10 times larger, and the scheduling lag of a
4-session read-write capture replayed at --speed 1. Results go to bench/out/replay-<date>.json.

Usage: python3 bench/replay.py [--rows 100000] [--seconds 10] [--threads 4] [--repeat 3] [--rw-rate 40]
       [--skip-pt] [--keep]
"""

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUTOVER = ROOT / "target" / "release" / "cutover"
GNU_TIME = "/usr/bin/time"
DIFFERING_IDS = (17, 4242, 77777)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True, **kw)


def ensure_tools():
    apt = {"sysbench": "sysbench", "pt-upgrade": "percona-toolkit", "mariadbd": "mariadb-server",
           "mariadb": "mariadb-client", "mariadb-dump": "mariadb-client", GNU_TIME: "time"}
    missing = sorted({pkg for exe, pkg in apt.items() if not shutil.which(exe)})
    if missing:
        sh(["apt-get", "update"])
        sh(["apt-get", "install", "-y", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def mariadb(port, sql, db="sbtest"):
    return sh(["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", "-N", "-e", sql, db],
              capture_output=True).stdout.strip()


def timed(cmd, **kw):
    """Runs cmd under GNU time: (seconds, peak RSS MiB, stdout, stderr, exit code)."""
    fd, tfile = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    t0 = time.monotonic()
    p = subprocess.run([GNU_TIME, "-f", "%M", "-o", tfile, *cmd], text=True, capture_output=True, **kw)
    wall = time.monotonic() - t0
    rss = int(Path(tfile).read_text().split()[-1]) / 1024
    os.unlink(tfile)
    return wall, rss, p.stdout, p.stderr, p.returncode


def prepare(src, tgt, rows):
    for port in (src, tgt):
        mariadb(port, "CREATE DATABASE sbtest", db="mysql")
    sh(["sysbench", "oltp_read_only", "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={src}",
        "--mysql-user=root", "--mysql-db=sbtest", "--tables=1", f"--table-size={rows}", "prepare"],
       stdout=subprocess.DEVNULL)
    sh(f"mariadb-dump -h127.0.0.1 -P{src} -uroot --single-transaction --quick sbtest"
       f" | mariadb -h127.0.0.1 -P{tgt} -uroot sbtest")
    ids = [i for i in DIFFERING_IDS if i <= rows]
    mariadb(tgt, f"UPDATE sbtest1 SET c = REVERSE(c) WHERE id IN ({','.join(map(str, ids))})")


def capture_run(src, sandbox, name, test, threads, seconds, rate=0):
    """Runs sysbench `test` on the source with the slow log on; returns the workload path."""
    log = sandbox / f"{name}.log"
    mariadb(src, f"SET GLOBAL log_output = 'FILE'; SET GLOBAL slow_query_log_file = '{log}';"
                 " SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = ON", db="mysql")
    sh(["sysbench", test, "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={src}",
        "--mysql-user=root", "--mysql-db=sbtest", "--tables=1", f"--threads={threads}",
        f"--time={seconds}", f"--rate={rate}", "--db-ps-mode=disable", "run"], stdout=subprocess.DEVNULL)
    mariadb(src, "SET GLOBAL slow_query_log = OFF; SET GLOBAL long_query_time = 10", db="mysql")
    work = sandbox / f"{name}.cwl"
    sh([str(CUTOVER), "capture", "--from", "slow-log", "--input", str(log), "--output", str(work)],
       stdout=subprocess.DEVNULL)
    return log, work


def sessions_of(work):
    """{session: [statements]} from a workload file (gzip JSON lines)."""
    out = {}
    with gzip.open(work, "rt") as f:
        next(f)
        for line in f:
            r = json.loads(line)
            if r.get("cmd") == "query":
                out.setdefault(r["session"], []).append(r["sql"])
    return out


def floor(src, tgt, work, tmp):
    """The statements, uncompared, by one `mariadb` client per session on both servers at once."""
    files = []
    for sid, stmts in sessions_of(work).items():
        p = tmp / f"session-{sid}.sql"
        p.write_text("".join(s + ";\n" for s in stmts))
        files.append(p)
    t0 = time.monotonic()
    procs = []
    for port in (src, tgt):
        for p in files:
            procs.append(subprocess.Popen(f"mariadb -h127.0.0.1 -P{port} -uroot -N sbtest < {p} > /dev/null",
                                          shell=True))
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"floor: a client failed: {codes}")
    return time.monotonic() - t0


def touches(sql, ids):
    """Whether a sysbench statement reads the `c` of one of `ids` (the ground truth)."""
    if "SUM(k)" in sql or "sbtest1" not in sql:
        return False
    m = re.search(r"WHERE id=(\d+)", sql)
    if m:
        return int(m.group(1)) in ids
    m = re.search(r"BETWEEN (\d+) AND (\d+)", sql)
    return bool(m) and any(int(m.group(1)) <= i <= int(m.group(2)) for i in ids)


def pt_differing(out):
    """The statements pt-upgrade lists under row, row count or error differences.

    A report is classes (`# Query class …` banners) of sections (`## Row diffs: 9`) of
    examples (`-- 1.`, the differing rows as `@ row`/`<`/`>` lines, then the statement).
    A section ends at the next section, class banner or the closing statistics; an example's
    statement is its last line that is not a row-diff line."""
    found = set()
    for section in re.split(r"^(?=## \w|#{10,}|#-{10,})", out, flags=re.M):
        head = section.split("\n", 1)[0]
        if not re.match(r"## .*(Row|row|Error|error).* diffs: \d+", head):
            continue
        for example in re.split(r"^-- \d+\.$", section, flags=re.M)[1:]:
            lines = [ln for ln in example.strip().split("\n")
                     if ln.strip() and not ln.startswith(("#", "@", "<", ">"))]
            if lines:
                found.add(lines[-1].strip())
    return found


def pt_stats(out):
    stats = {}
    for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M):
        stats[m.group(1)] = int(m.group(2))
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rw-rate", type=int, default=40,
                    help="sysbench --rate (transactions/s) of the read-write capture replayed at --speed 1")
    ap.add_argument("--repeat", type=int, default=3, help="runs of cutover and of the floor (medians)")
    ap.add_argument("--skip-pt", action="store_true", help="leave out pt-upgrade (a minute per run)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = ap.parse_args()
    ensure_tools()
    if not CUTOVER.exists():
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    sandbox = Path(tempfile.mkdtemp(prefix="cutover-bench-replay-"))
    result = {"date": datetime.now().isoformat(timespec="seconds"), "rows": args.rows,
              "seconds": args.seconds, "threads": args.threads}
    try:
        up = json.loads(sh([str(CUTOVER), "sandbox", "up", "--dir", str(sandbox), "--format", "json"],
                           capture_output=True).stdout)
        src, tgt = up["source"]["port"], up["target"]["port"]
        prepare(src, tgt, args.rows)
        log, work = capture_run(src, sandbox, "ro", "oltp_read_only", args.threads, args.seconds)
        stats = json.loads(sh([str(CUTOVER), "workload", "stats", str(work), "--format", "json"],
                              capture_output=True).stdout)
        statements = stats["commands"].get("query", 0)
        result["workload"] = {"statements": statements, "sessions": stats["sessions"],
                              "captured_qps": round(statements / max(stats["span_ms"] / 1000, 1e-9))}
        print(f"workload: {statements} statements in {stats['sessions']} sessions over {stats['span_ms'] / 1000:.1f} s",
              flush=True)

        truth = [s for stmts in sessions_of(work).values() for s in stmts if touches(s, DIFFERING_IDS)]
        result["truth"] = {"statements": len(truth), "distinct": len(set(truth))}

        dsn = lambda p: f"mysql://root@127.0.0.1:{p}/sbtest"  # noqa: E731
        def cutover_run():
            wall, rss, out, err, code = timed([str(CUTOVER), "replay", str(work), "--target", dsn(tgt),
                                               "--baseline", dsn(src), "--read-only", "--speed", "max",
                                               "--format", "json"])
            if code not in (0, 1):
                sys.exit(f"cutover replay failed: {err}")
            return wall, rss, json.loads(out)

        if not args.skip_pt:
            wall, _, out, err, code = timed(["pt-upgrade", f"h=127.0.0.1,P={src},u=root,D=sbtest",
                                             f"h=127.0.0.1,P={tgt},u=root,D=sbtest", "--type", "slowlog",
                                             "--max-class-size", "100000000", "--max-examples", "100000000",
                                             str(log)])
            st = pt_stats(out)
            compared = (st.get("queries_no_diffs", 0) + st.get("queries_with_diffs", 0)
                        + st.get("queries_with_errors", 0))
            result["pt-upgrade"] = {"seconds": round(wall, 2), "statements": compared,
                                    "per_s": round(compared / wall), "statements_with_diffs": st.get("queries_with_diffs"),
                                    "distinct_differing_rows_or_errors": len(pt_differing(out)),
                                    "matches_truth": pt_differing(out) == set(truth), "stats": st,
                                    # What tells the two sets apart, for a look at pt-upgrade's report.
                                    "only_pt_upgrade": sorted(pt_differing(out) - set(truth)),
                                    "only_truth": sorted(set(truth) - pt_differing(out))}
            (ROOT / "bench" / "out").mkdir(exist_ok=True)
            (ROOT / "bench" / "out" / f"pt-upgrade-{datetime.now():%Y%m%d-%H%M%S}.txt").write_text(out)

        # cutover and the floor, alternately, --repeat times (the machine is shared: medians).
        tmp = sandbox / "floor"
        tmp.mkdir()
        runs, floors = [], []
        for i in range(args.repeat):
            runs.append(cutover_run())
            floors.append(floor(src, tgt, work, tmp))
            print(f"run {i + 1}: cutover {runs[-1][0]:.2f} s, floor {floors[-1]:.2f} s,"
                  f" ratio {runs[-1][0] / floors[-1]:.2f}", flush=True)
        walls = sorted(r[0] for r in runs)
        wall = walls[len(walls) // 2]
        rss = max(r[1] for r in runs)
        rep = runs[-1][2]
        result["cutover"] = {"seconds": round(wall, 2), "runs_s": [round(r[0], 2) for r in runs],
                             "statements": rep["replayed"],
                             "per_s": round(rep["replayed"] / wall), "peak_rss_mib": round(rss, 1),
                             "statements_with_diffs": rep["statements_with_diffs"],
                             "classes_with_diffs": sorted(c["fingerprint"] for c in rep["classes"] if c["diffs"])}
        fwall = sorted(floors)[len(floors) // 2]
        result["floor"] = {"seconds": round(fwall, 2), "runs_s": [round(f, 2) for f in floors],
                           "statements": statements, "per_s": round(statements / fwall)}
        result["ratio_to_floor"] = {"median": round(wall / fwall, 2),
                                    "runs": [round(r[0] / f, 2) for r, f in zip(runs, floors)]}

        # Memory: the same workload 10 times over (sessions renumbered), replayed the same way.
        big = sandbox / "x10.cwl"
        with gzip.open(work, "rt") as f, gzip.open(big, "wt", compresslevel=1) as g:
            header, lines = next(f), f.readlines()
            g.write(header)
            for k in range(10):
                for line in lines:
                    r = json.loads(line)
                    r["session"] += (k + 1) << 48
                    g.write(json.dumps(r) + "\n")
        wall, rss, out, _, _ = timed([str(CUTOVER), "replay", str(big), "--target", dsn(tgt), "--baseline", dsn(src),
                                      "--read-only", "--speed", "max", "--format", "json"])
        result["cutover_x10"] = {"seconds": round(wall, 2), "peak_rss_mib": round(rss, 1),
                                 "statements": json.loads(out)["replayed"]}

        # Pace: a 4-session read-write capture (rate-limited, so that replaying it on both
        # servers of this machine can keep pace at all) replayed at its own speed, read-only
        # (its reads), then read-write (writes too; given at most 120 s).
        _, rw = capture_run(src, sandbox, "rw", "oltp_read_write", 4, args.seconds, rate=args.rw_rate)
        for key, extra in (("speed_1", ["--read-only"]), ("speed_1_read_write", ["--yes"])):
            try:
                p = subprocess.run([str(CUTOVER), "replay", str(rw), "--target", dsn(tgt), "--baseline", dsn(src),
                                    "--speed", "1", "--format", "json", *extra], capture_output=True, text=True,
                                   timeout=120)
                rep = json.loads(p.stdout)
                result[key] = {"lag": rep["lag"], "elapsed_s": rep["elapsed_ms"] / 1000, "workload_s": rep["workload_ms"] / 1000,
                               "statements": rep["replayed"], "statements_with_diffs": rep["statements_with_diffs"],
                               "session_errors": len(rep["session_errors"])}
                print(f"{key}: {rep['replayed']} statements, {rep['elapsed_ms'] / 1000:.1f} s for {rep['workload_ms'] / 1000:.1f} s,"
                      f" lag p50 {rep['lag']['p50_ms']:.1f} ms, p99 {rep['lag']['p99_ms']:.1f} ms", flush=True)
            except subprocess.TimeoutExpired:
                result[key] = {"finished": False, "timeout_s": 120}
    finally:
        if args.keep:
            print(f"sandbox kept: {CUTOVER} sandbox down --dir {sandbox}")
        else:
            subprocess.run([str(CUTOVER), "sandbox", "down", "--dir", str(sandbox)])
            shutil.rmtree(sandbox, ignore_errors=True)

    c, pt, fl = result["cutover"], result.get("pt-upgrade"), result["floor"]
    checks = {
        "cutover finds exactly the statements reading the differing rows":
            c["statements_with_diffs"] == result["truth"]["statements"],
        "cutover within 1.3x of the floor (medians)": c["seconds"] <= 1.3 * fl["seconds"],
        "x10 workload: peak RSS within 1.5x": result["cutover_x10"]["peak_rss_mib"] <= 1.5 * c["peak_rss_mib"],
        "speed 1 (read-only): scheduling lag p99 < 100 ms": result["speed_1"].get("lag", {}).get("p99_ms", 1e9) < 100,
        "speed 1 (read-write): finishes, lag p99 < 100 ms":
            result["speed_1_read_write"].get("lag", {}).get("p99_ms", 1e9) < 100,
    }
    if pt:
        checks["pt-upgrade finds the same (distinct) statements"] = pt["matches_truth"]
        checks["cutover >= 8x pt-upgrade statements/s"] = c["per_s"] >= 8 * pt["per_s"]
    result["checks"] = checks
    print(json.dumps(result, indent=2))
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"replay-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(result, indent=2) + "\n")
    for k, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {k}")


if __name__ == "__main__":
    main()
