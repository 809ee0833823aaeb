#!/usr/bin/env python3
"""Benchmark `cutover diff` against reladiff, pt-table-sync --print and the checksum floor.

Two sysbench tables of --rows rows are made on the source of a fresh sandbox pair, one in a
utf8mb4 database (`sbtest`) and one as `sysbench prepare` makes it on a server whose default
character set is latin1 (`sblatin`), copied to the target, and each target table gets the same
7 scattered differences; a 30-column table of mixed types (`sbwide.wide`) gets them too. Every
tool then runs --runs times, alternating (after one warm-up round), each as a subprocess under
GNU time: cutover with its default row hash and with `--row-hash portable` (the checksum
MySQL, Aurora and TiDB pairs get) on each table, pt-table-sync, reladiff and the floor on each
sysbench table, and the floor of the wide table. The script prints median/min wall time, peak
RSS, the differences each tool found, and the ratios against the targets of the acceptance
text. Results also go to bench/out/diff-<date>.json.

Usage: python3 bench/diff.py [--rows 1000000] [--runs 5] [--keep] [--tools ...] [--slack 0.2]
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUTOVER = ROOT / "target" / "release" / "cutover"
GNU_TIME = "/usr/bin/time"
KINDS = ("mismatched", "missing_in_target", "extra_in_target")

# The data sets: database, table, the floor's column list.
SB_COLUMNS = "id,k,c,pad"
WIDE_COLUMNS = ",".join(["id"] + [f"c{i}" for i in range(1, 30)])
DATASETS = {"utf8mb4": ("sbtest", "sbtest1", SB_COLUMNS), "latin1": ("sblatin", "sbtest1", SB_COLUMNS),
            "wide": ("sbwide", "wide", WIDE_COLUMNS)}

# The 30-column table: an INT key and 29 columns of mixed types (NULL-able ones NULL in every
# 7th row), all functions of the key, so both sides make the same rows without a copy.
WIDE_TYPES = ["INT", "BIGINT", "DECIMAL(12,2)", "DOUBLE", "DATETIME(6)", "VARCHAR(64)", "TEXT", "JSON",
              "BLOB", "INT NULL", "BIGINT UNSIGNED", "DECIMAL(20,6) NULL", "DOUBLE NULL", "DATETIME(6) NULL",
              "VARCHAR(32) NULL", "TEXT NULL", "JSON NULL", "BLOB NULL", "INT", "BIGINT NULL",
              "DECIMAL(8,3)", "DOUBLE", "DATETIME(6)", "VARCHAR(128)", "TEXT", "JSON", "VARBINARY(32)",
              "SMALLINT", "DATE"]
WIDE_VALUES = ["seq * 3", "seq * 1000003", "seq / 7", "seq / 3", "'2024-01-01' + INTERVAL seq SECOND",
               "CONCAT('name-', seq)", "REPEAT(CONCAT('t', seq), 3)", "JSON_OBJECT('n', seq)",
               "UNHEX(SHA1(seq))", "seq % 1000", "seq * 7919", "seq / 13", "seq / 17",
               "'2020-01-01' + INTERVAL seq MINUTE", "CONCAT('v', seq % 97)", "CONCAT('text ', seq)",
               "JSON_ARRAY(seq, 'x')", "UNHEX(MD5(seq))", "seq % 7", "seq * 31", "seq % 10000 / 8",
               "seq * 1.5", "'2000-01-01' + INTERVAL seq HOUR", "CONCAT('longer-name-', seq, '-', seq % 13)",
               "CONCAT('body ', seq * 3)", "JSON_OBJECT('k', seq % 11, 'v', CONCAT('x', seq))",
               "UNHEX(LPAD(HEX(seq), 8, '0'))", "seq % 30000", "'2001-01-01' + INTERVAL seq % 9000 DAY"]
assert len(WIDE_TYPES) == len(WIDE_VALUES) == 29


def wide_sql(rows):
    cols = ", ".join(f"c{i + 1} {t}" for i, t in enumerate(WIDE_TYPES))
    values = ", ".join(f"IF(seq % 7 = 0, NULL, {v})" if "NULL" in t else v
                       for t, v in zip(WIDE_TYPES, WIDE_VALUES))
    return (f"CREATE TABLE wide (id INT NOT NULL PRIMARY KEY, {cols});"
            f" INSERT INTO wide SELECT seq, {values} FROM seq_1_to_{rows}")


# Tools: name -> (program, data set, extra cutover flags). `cutover*` diff the data set's
# table; `floor*` run the floor query on it; `pt-table-sync*` and `reladiff*` compare it.
PORTABLE = ["--row-hash", "portable"]
TOOLS = {
    "cutover": ("cutover", "utf8mb4", []),
    "cutover-portable": ("cutover", "utf8mb4", PORTABLE),
    "cutover-latin1": ("cutover", "latin1", []),
    "cutover-latin1-portable": ("cutover", "latin1", PORTABLE),
    "cutover-wide": ("cutover", "wide", []),
    "cutover-wide-portable": ("cutover", "wide", PORTABLE),
    "cutover-crc32": ("cutover", "utf8mb4", ["--row-hash", "crc32"]),
    "cutover-varchar": ("cutover", "utf8mb4", []),
    "cutover-keyless": ("cutover", "utf8mb4", []),
    "cutover-alldiff": ("cutover", "utf8mb4", []),
    "pt-table-sync": ("pt-table-sync", "utf8mb4", []),
    "pt-table-sync-latin1": ("pt-table-sync", "latin1", []),
    "reladiff": ("reladiff", "utf8mb4", []),
    "reladiff-latin1": ("reladiff", "latin1", []),
    "floor": ("floor", "utf8mb4", []),
    "floor-latin1": ("floor", "latin1", []),
    "floor-wide": ("floor", "wide", []),
}
SYSBENCH_VARIANTS = {  # the four sysbench variants: cutover tool -> (pt-table-sync, reladiff, floor)
    "cutover": ("pt-table-sync", "reladiff", "floor"),
    "cutover-portable": ("pt-table-sync", "reladiff", "floor"),
    "cutover-latin1": ("pt-table-sync-latin1", "reladiff-latin1", "floor-latin1"),
    "cutover-latin1-portable": ("pt-table-sync-latin1", "reladiff-latin1", "floor-latin1"),
}
DEFAULT_TOOLS = ",".join(["cutover", "cutover-portable", "cutover-latin1", "cutover-latin1-portable",
                          "pt-table-sync", "pt-table-sync-latin1", "reladiff", "reladiff-latin1",
                          "floor", "floor-latin1", "cutover-wide", "cutover-wide-portable", "floor-wide",
                          "cutover-varchar", "cutover-keyless"])


def targets(slack):
    """The acceptance targets; `slack` (0.2 = within 20 %) loosens the ratios."""
    lo, hi = 1 - slack, 1 + slack
    out = {}  # description: test on the results
    for c, (pt, rd, fl) in SYSBENCH_VARIANTS.items():
        out[f"{pt} / {c} >= {3 * lo:g}"] = lambda r, c=c, pt=pt: ratio(r, pt, c) >= 3 * lo
        out[f"{rd} / {c} >= {5.5 * lo:g}"] = lambda r, c=c, rd=rd: ratio(r, rd, c) >= 5.5 * lo
        out[f"{c} / {fl} <= {2.5 * hi:g}"] = lambda r, c=c, fl=fl: ratio(r, c, fl) <= 2.5 * hi
        out[f"{c} peak RSS < 100 MiB"] = lambda r, c=c: r[c]["peak_rss_mib"] < 100
    for c in ("cutover-wide", "cutover-wide-portable"):
        out[f"{c} / floor-wide <= {2.5 * hi:g}"] = lambda r, c=c: ratio(r, c, "floor-wide") <= 2.5 * hi
    out[f"cutover-varchar / cutover <= {1.5 * hi:g}"] = lambda r: ratio(r, "cutover-varchar", "cutover") <= 1.5 * hi
    out["cutover-alldiff peak RSS < 200 MiB"] = lambda r: r["cutover-alldiff"]["peak_rss_mib"] < 200
    return out



# Copies of sbtest1 made on each side from that side's sbtest1, so they carry the same 7
# differences: a VARCHAR key ('user-<id>', utf8mb4_general_ci on the source, utf8mb4_bin on the
# target, as MySQL 5.7 -> TiDB), and no key at all.
EXTRA_TABLES = {
    "sbvar": "CREATE TABLE sbvar (id VARCHAR(20) NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,"
             " pad CHAR(60) NOT NULL) COLLATE {coll};"
             " INSERT INTO sbvar SELECT CONCAT('user-', id), k, c, pad FROM sbtest1",
    "sbbag": "CREATE TABLE sbbag (k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL) COLLATE {coll};"
             " INSERT INTO sbbag SELECT k, c, pad FROM sbtest1",
    # Every row differs: the target's copy has k + 1 in every row (on top of the 7 differences).
    "sball": "CREATE TABLE sball LIKE sbtest1; INSERT INTO sball SELECT id, k + {bump}, c, pad FROM sbtest1",
}
TOOL_TABLES = {"cutover-varchar": "sbvar", "cutover-keyless": "sbbag", "cutover-alldiff": "sball"}


def sh(cmd, **kw):
    """Runs a command (list, or a string for the shell), failing loudly."""
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True, **kw)


def ensure_tools():
    """Installs the Debian packages and reladiff when something is missing."""
    apt = {"sysbench": "sysbench", "pt-table-sync": "percona-toolkit", "mariadbd": "mariadb-server",
           "mariadb": "mariadb-client", "mariadb-dump": "mariadb-client", GNU_TIME: "time"}
    missing = sorted({pkg for exe, pkg in apt.items() if not shutil.which(exe)})
    if missing:
        print(f"installing {' '.join(missing)}", flush=True)
        sh(["apt-get", "update"])
        sh(["apt-get", "install", "-y", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (importlib.util.find_spec("reladiff") and importlib.util.find_spec("mysql.connector")):
        print("installing reladiff[mysql]", flush=True)
        sh([sys.executable, "-m", "pip", "install", "reladiff[mysql]"])


def mariadb(port, sql, db="sbtest"):
    return sh(["mariadb", "-h127.0.0.1", f"-P{port}", "-uroot", "-N", "-e", sql, db],
              capture_output=True).stdout.strip()


def prepare_data(src, tgt, rows, tools):
    """The sysbench tables on the source, dump → target, then 7 differences on each target table.

    Returns the expected differences (the same in every table): {kind: sorted ids}."""
    sets = {TOOLS[t][1] for t in tools}
    t0 = time.monotonic()
    gap = injected(rows)["extra_in_target"][0]
    exp = injected(rows)
    upd, dele, ins = exp["mismatched"], exp["missing_in_target"], exp["extra_in_target"]
    for name in ("utf8mb4", "latin1"):
        if name not in sets:
            continue
        db = DATASETS[name][0]
        charset = "utf8mb4" if name == "utf8mb4" else "latin1"
        for port in (src, tgt):  # sysbench's table takes the database's character set
            mariadb(port, f"CREATE DATABASE {db} CHARACTER SET {charset}", db="mysql")
        sh(["sysbench", "oltp_read_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={src}", "--mysql-user=root", f"--mysql-db={db}", "--tables=1",
            f"--table-size={rows}", "prepare"], stdout=subprocess.DEVNULL)
        mariadb(src, f"DELETE FROM sbtest1 WHERE id = {gap}", db=db)  # a hole on both sides, filled on the target
        sh(f"mariadb-dump -h127.0.0.1 -P{src} -uroot --single-transaction --quick {db}"
           f" | mariadb -h127.0.0.1 -P{tgt} -uroot {db}")
        mariadb(tgt, f"UPDATE sbtest1 SET c = REVERSE(c) WHERE id = {upd[0]};"
                     f"UPDATE sbtest1 SET k = k + 1 WHERE id = {upd[1]};"
                     f"UPDATE sbtest1 SET pad = REVERSE(pad) WHERE id = {upd[2]};"
                     f"DELETE FROM sbtest1 WHERE id IN ({dele[0]}, {dele[1]});"
                     f"INSERT INTO sbtest1 (id, k, c, pad) VALUES ({ins[0]}, 4242, 'bench-inside', 'x'),"
                     f" ({ins[1]}, 4243, 'bench-after-end', 'y')", db=db)
        counts = [mariadb(p, "SELECT COUNT(*) FROM sbtest1", db=db) for p in (src, tgt)]
        print(f"{db}.sbtest1 rows: source {counts[0]}, target {counts[1]}", flush=True)
        if counts != [str(rows - 1)] * 2:  # the pipe above hides a failed dump: check the copy
            sys.exit(f"unexpected row counts {counts}, wanted {rows - 1} on each side")
    if "wide" in sets:
        for port in (src, tgt):
            mariadb(port, "CREATE DATABASE sbwide", db="mysql")
            mariadb(port, wide_sql(rows) + f"; DELETE FROM wide WHERE id = {gap}", db="sbwide")
        mariadb(tgt, f"UPDATE wide SET c6 = REVERSE(c6) WHERE id = {upd[0]};"
                     f"UPDATE wide SET c12 = COALESCE(c12, 0) + 0.000001 WHERE id = {upd[1]};"
                     f"UPDATE wide SET c26 = JSON_SET(c26, '$.k', -1) WHERE id = {upd[2]};"
                     f"DELETE FROM wide WHERE id IN ({dele[0]}, {dele[1]});"
                     f"INSERT INTO wide (id, c1, c2, c3, c4, c5, c6, c7, c8, c9, c11, c19, c21, c22, c23,"
                     f" c24, c25, c26, c27, c28, c29) SELECT id, 1, 2, 3, 4, NOW(6), 'a', 'b', '{{}}', 'c', 5, 6,"
                     f" 7, 8, NOW(6), 'd', 'e', '[]', 'f', 9, CURDATE() FROM (SELECT {ins[0]} AS id UNION"
                     f" SELECT {ins[1]}) x", db="sbwide")
    print(f"data ready in {time.monotonic() - t0:.0f}s", flush=True)
    wanted = {TOOL_TABLES[t] for t in tools if t in TOOL_TABLES}
    for port, coll, bump in ((src, "utf8mb4_general_ci", 0), (tgt, "utf8mb4_bin", 1)):
        for name, sql in EXTRA_TABLES.items():
            if name in wanted:
                mariadb(port, sql.format(coll=coll, bump=bump))
    return {k: sorted(v) for k, v in exp.items()}


def injected(rows):
    """The ids of the 7 differences for a table of `rows` rows (the extra one in a key gap first)."""
    pick = lambda pct, off: rows * pct // 100 + off  # noqa: E731 (scattered ids)
    return {"mismatched": [pick(11, 3), pick(52, 7), pick(93, 1)],
            "missing_in_target": [pick(24, 5), pick(71, 9)],
            "extra_in_target": [pick(37, 2), rows + 1000]}


def measured(cmd, env=None):
    """Starts cmd under GNU time; returns a function that waits and gives (stdout, stderr, rss KiB)."""
    fd, tfile = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    p = subprocess.Popen([GNU_TIME, "-f", "%e %M", "-o", tfile, *cmd], text=True, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait():
        out, err = p.communicate()
        rss = int(Path(tfile).read_text().split()[-1])  # last line: a failure adds one before
        os.unlink(tfile)
        return out, err, rss, p.returncode
    return wait


def found_cutover(out, err):
    table = json.loads(out)["tables"][0]
    found = {k: [] for k in KINDS}
    if table["method"] == "multiset":  # keyless: rows, not keys; compare the counts
        return {k: list(range(table[k])) for k in KINDS}, {
            k: table[k] for k in ("chunks", "rows_compared", "elapsed_ms", "method")}
    if table.get("diffs_truncated"):  # every row differs: the counts are the result
        return {k: table[k] for k in KINDS}, {
            k: table[k] for k in ("chunks", "rows_compared", "elapsed_ms", "method")}
    for d in table["diffs"]:
        key = d["key"]["id"]
        found[d["kind"]].append(int(key[5:]) if isinstance(key, str) else key)
    extra = {k: table[k] for k in ("chunks", "rows_compared", "elapsed_ms", "method")}
    return found, extra


def found_reladiff(out, err):
    minus, plus = set(), set()
    for line in out.splitlines():
        if line.strip():
            sign, values = json.loads(line)
            (minus if sign == "-" else plus).add(int(values[0]))
    return {"mismatched": minus & plus, "missing_in_target": minus - plus,
            "extra_in_target": plus - minus}, {}


def found_pt(out, err):
    kinds = {"UPDATE": "mismatched", "REPLACE": "mismatched", "INSERT": "missing_in_target",
             "DELETE": "extra_in_target"}
    found = {k: [] for k in KINDS}
    for line in out.splitlines():
        m = re.match(r"(UPDATE|REPLACE|INSERT|DELETE)\b.*?(?:WHERE `id`=|VALUES \()'(-?\d+)'", line)
        if m:
            found[kinds[m[1]]].append(int(m[2]))
    return found, {"statements": sum(map(len, found.values()))}


def run_tool(name, src, tgt, reladiff_threads):
    """One run of one tool: {wall_s, rss_kib, found, ...}."""
    s, t = f"mysql://root@127.0.0.1:{src}", f"mysql://root@127.0.0.1:{tgt}"
    program, dataset, flags = TOOLS[name]
    db, table, columns = DATASETS[dataset]
    if program == "floor":
        sql = f"SELECT BIT_XOR(CRC32(CONCAT_WS('#',{columns}))) FROM {table}"
        t0 = time.monotonic()
        waits = [measured(["mariadb", "-h127.0.0.1", f"-P{p}", "-uroot", "-N", "-e", sql, db])
                 for p in (src, tgt)]
        results = [w() for w in waits]
        wall = time.monotonic() - t0
        sums = [r[0].strip() for r in results]
        return {"wall_s": wall, "rss_kib": max(r[2] for r in results), "found": None,
                "checksums_differ": sums[0] != sums[1]}
    if program == "cutover":
        table = TOOL_TABLES.get(name, table)
        cmd, parse, env = [str(CUTOVER), "diff", "--source", s, "--target", t,
                           "--tables", f"{db}.{table}", "--format", "json", *flags], found_cutover, None
    elif program == "reladiff":
        cmd = [sys.executable, "-m", "reladiff", f"{s}/{db}", table, f"{t}/{db}", table,
               "-k", "id", "-c", "k", "-c", "c", "-c", "pad", "--json"]
        if reladiff_threads:
            cmd += ["-j", str(reladiff_threads)]
        parse, env = found_reladiff, {**os.environ, "COLUMNS": "100000"}  # rich wraps at 80 otherwise
    else:
        cmd = ["pt-table-sync", "--print", "--databases", db, "--tables", table,
               f"h=127.0.0.1,P={src},u=root", f"h=127.0.0.1,P={tgt},u=root"]
        parse, env = found_pt, None
    t0 = time.monotonic()
    out, err, rss, rc = measured(cmd, env)()
    wall = time.monotonic() - t0
    try:
        found, extra = parse(out, err)
        found = {k: v if isinstance(v, int) else sorted(v) for k, v in found.items()}
    except Exception as e:  # a crashed tool is a wrong result, not a crashed benchmark
        found, extra = None, {"error": f"{e}; rc={rc}; stderr: {err.strip()[-500:]}"}
    return {"wall_s": wall, "rss_kib": rss, "rc": rc, "found": found, **extra}


def ratio(res, a, b):
    return res[a]["median_s"] / res[b]["median_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    ap.add_argument("--sandbox", type=Path,
                    help="reuse a sandbox kept by an earlier run with the same --rows and --tools (data ready)")
    ap.add_argument("--buffer-pool-mb", type=int, default=4096,
                    help="InnoDB buffer pool of each server (the 10M-row run: 6144, so the data stays in memory)")
    ap.add_argument("--tools", default=DEFAULT_TOOLS, help=f"any of {','.join(TOOLS)}")
    ap.add_argument("--binary", type=Path, help="cutover binary (default: build the release one)")
    ap.add_argument("--reladiff-threads", type=int, help="reladiff -j (default: its own, 1)")
    ap.add_argument("--slack", type=float, default=0.0,
                    help="ratio targets hold within this fraction (0.2: the 10M-row check)")
    args = ap.parse_args()
    assert args.rows >= 1000, "--rows must be at least 1000"
    tools = args.tools.split(",")
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        sys.exit(f"unknown tools {unknown}: any of {','.join(TOOLS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs

    ensure_tools()
    global CUTOVER
    if args.binary:
        CUTOVER = args.binary.resolve()
    else:
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
    reuse = args.sandbox is not None
    sandbox = args.sandbox or Path(tempfile.mkdtemp(prefix="cutover-bench-"))
    try:
        if reuse:
            up = json.loads(sh([str(CUTOVER), "sandbox", "status", "--dir", str(sandbox), "--format", "json"],
                               capture_output=True).stdout)
        else:
            up = json.loads(sh([str(CUTOVER), "sandbox", "up", "--dir", str(sandbox), "--buffer-pool-mb",
                                str(args.buffer_pool_mb), "--format", "json"], capture_output=True).stdout)
        src, tgt = up["source"]["port"], up["target"]["port"]
        for port in (src, tgt):  # a reused sandbox may have been started smaller; resizing is online
            mariadb(port, f"SET GLOBAL innodb_buffer_pool_size = {args.buffer_pool_mb << 20}", db="mysql")
        print(f"sandbox {sandbox}: source :{src}, target :{tgt}", flush=True)
        if reuse:
            expected = {k: sorted(v) for k, v in injected(args.rows).items()}
        else:
            expected = prepare_data(src, tgt, args.rows, tools)
        print(f"expected differences: {expected}", flush=True)

        runs = {name: [] for name in tools}
        for rnd in range(args.runs + 1):
            for name in tools:
                r = run_tool(name, src, tgt, args.reladiff_threads)
                label = "warm-up" if rnd == 0 else f"run {rnd}"
                print(f"{label:8} {name:14} {r['wall_s']:7.2f}s {r['rss_kib'] / 1024:7.1f} MiB", flush=True)
                if rnd:
                    runs[name].append(r)
        report(args, tools, runs, expected, up)
    finally:
        if args.keep or reuse:
            print(f"sandbox kept: {CUTOVER} sandbox down --dir {sandbox}")
        else:
            subprocess.run([str(CUTOVER), "sandbox", "down", "--dir", str(sandbox)])
            shutil.rmtree(sandbox, ignore_errors=True)


def report(args, tools, runs, expected, up):
    res, wrong = {}, []
    for name in tools:
        rs = runs[name]
        walls = [r["wall_s"] for r in rs]
        if TOOLS[name][0] == "floor":
            ok = all(r["checksums_differ"] for r in rs)
            found = "checksums differ" if ok else "checksums EQUAL"
        else:
            want = expected
            if name == "cutover-alldiff":  # counts: every common row, 2 deleted, 2 added
                want = {"mismatched": args.rows - 3, "missing_in_target": 2, "extra_in_target": 2}
            elif name == "cutover-keyless":  # a changed row is one row missing and one extra
                n = {k: len(v) for k, v in expected.items()}
                want = {"mismatched": [], "missing_in_target": list(range(n["missing_in_target"] + n["mismatched"])),
                        "extra_in_target": list(range(n["extra_in_target"] + n["mismatched"]))}
            ok = all(r["found"] == want for r in rs)
            f = rs[-1]["found"]
            size = lambda v: v if isinstance(v, int) else len(v)  # noqa: E731
            found = (f"{sum(size(v) for v in f.values())} ({'/'.join(str(size(f[k])) for k in KINDS)})"
                     if f else "error")
        if not ok:
            wrong.append(name)
        res[name] = {"median_s": statistics.median(walls), "min_s": min(walls),
                     "peak_rss_mib": max(r["rss_kib"] for r in rs) / 1024, "correct": ok,
                     "found": found, "runs": rs}

    print(f"\n{args.rows} rows, {args.runs} runs each; found = total (mismatched/missing/extra)")
    print(f"{'tool':24} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13}  found")
    for name in tools:
        r = res[name]
        print(f"{name:24} {r['median_s']:9.2f} {r['min_s']:7.2f} {r['peak_rss_mib']:13.1f}  {r['found']}")
    for name in wrong:
        print(f"WRONG RESULT: {name}: expected {expected}, got {[r.get('found') for r in runs[name]]}")
    if "cutover" in res:
        c = res["cutover"]["runs"]
        print("cutover engine time (ms): " + ", ".join(str(r.get("elapsed_ms")) for r in c)
              + "; chunks: " + ", ".join(str(r.get("chunks")) for r in c))

    verdicts = {}
    print()
    for c, peers in SYSBENCH_VARIANTS.items():
        for name in peers:
            if name in res and c in res:
                a, b = (name, c) if TOOLS[name][0] != "floor" else (c, name)
                print(f"{a} / {b}: {ratio(res, a, b):.2f}x")
    for c in ("cutover-wide", "cutover-wide-portable"):
        if c in res and "floor-wide" in res:
            print(f"{c} / floor-wide: {ratio(res, c, 'floor-wide'):.2f}x")
    for name in ("cutover-varchar", "cutover-keyless", "cutover-alldiff"):
        if name in res and "cutover" in res:
            print(f"{name} / cutover: {ratio(res, name, 'cutover'):.2f}x")
    if "cutover-crc32" in res:  # the same ratios for the 32-bit opt-in (not the targets' subject)
        for name in ("pt-table-sync", "reladiff", "floor"):
            if name in res:
                a, b = (name, "cutover-crc32") if name != "floor" else ("cutover-crc32", "floor")
                print(f"{a} / {b}: {ratio(res, a, b):.2f}x  (--row-hash crc32)")
    for desc, test in targets(args.slack).items():
        try:
            verdicts[desc] = bool(test(res))
        except KeyError:
            continue
        print(f"{'PASS' if verdicts[desc] else 'FAIL'}  {desc}")

    out = ROOT / "bench" / "out" / f"diff-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": args.rows, "runs": args.runs, "nproc": os.cpu_count(),
                               "server": up.get("version"), "expected": expected, "results": res,
                               "targets": verdicts, "wrong": wrong}, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")
    if wrong or not all(verdicts.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
