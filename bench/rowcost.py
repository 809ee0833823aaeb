#!/usr/bin/env python3
"""Server instructions per row of `cutover diff` and of the floor, counted by callgrind.

Wall-clock ratios on a shared 2-core machine swing by ±30 % from run to run (the servers'
CPU speed itself varies); instruction counts do not. This script starts a source `mariadbd` under
`valgrind --tool=callgrind` (instrumentation off until a measurement) and a plain target, gives
both a sysbench table (the target's with 3 differences), and counts the instructions the
source executes for:

- the floor: one `BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad)))` full-table query, on the
  utf8mb4 table and on a latin1 copy (a sysbench table made on a server whose default character
  set is latin1);
- `cutover diff` of an integer-keyed table that is equal on both sides (the checksum pass
  alone), utf8mb4 and latin1, with the default 64-bit row hash (`crc32_pair` on MariaDB), with
  `--row-hash portable` (`crc32_reversed`, the form MySQL, Aurora and TiDB pairs get) and with
  `--row-hash crc32`;
- `cutover diff` of a VARCHAR-keyed table, `utf8mb4_general_ci` against `utf8mb4_bin`, equal
  (the walk of the source's index for range boundaries, and the range checksums), and with 3
  differences (each differing range of 20,000 rows is walked again for parts and those are
  checksummed again: at 100,000 rows that is most of the table, at the 1M rows of `diff.py`
  about 2 % per difference; the integer key's drill-down, a quarter chunk, is left out).

Only the source is counted (`--chunk-time 5s`: everything runs ~50x slower under
valgrind, and chunks should hold as many rows as at full speed). It prints instructions
per row and the ratio to the floor. The wall-clock comparison with the peers is `diff.py`.

    python3 bench/rowcost.py [--rows 50000] [--binary PATH] [--keep]
"""
import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR_SQL = "SELECT BIT_XOR(CRC32(CONCAT_WS('#',id,k,c,pad))) FROM sbtest.sbtest1"
SBVAR = """
CREATE TABLE sbvar (id VARCHAR(20) NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
  pad CHAR(60) NOT NULL) COLLATE {coll};
INSERT INTO sbvar SELECT CONCAT('user-', id), k, c, pad FROM sbtest1;
CREATE TABLE sbvsame LIKE sbvar; INSERT INTO sbvsame SELECT * FROM sbvar;
CREATE TABLE sbsame LIKE sbtest1; INSERT INTO sbsame SELECT * FROM sbtest1;
CREATE TABLE sblsame (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) CHARSET latin1;
INSERT INTO sblsame SELECT * FROM sbtest1;
CREATE TABLE tiny (id INT PRIMARY KEY, v INT); INSERT INTO tiny VALUES (1, 1), (2, 2);
"""
DIFFERENCES = """
UPDATE tiny SET v = 3 WHERE id = 2; UPDATE sbtest1 SET k = k + 1 WHERE id = {a}; DELETE FROM sbtest1 WHERE id = {b};
INSERT INTO sbtest1 VALUES ({rows} + 10, 1, 'x', 'y');
UPDATE sbvar SET k = k + 1 WHERE id = 'user-{a}'; DELETE FROM sbvar WHERE id = 'user-{b}';
INSERT INTO sbvar VALUES ('user-extra', 1, 'x', 'y');
"""


def sh(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def ensure_tools():
    missing = [p for p, b in (("valgrind", "valgrind"), ("sysbench", "sysbench"),
                              ("mariadb-server", "mariadbd")) if not shutil.which(b)
               and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        sh(["apt-get", "install", "-y", *missing], stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One mariadbd; under callgrind (instrumentation off until `count`) if asked."""

    def __init__(self, work: Path, callgrind: bool):
        work.mkdir()
        self.dir, self.port = work, free_port()
        data = work / "data"
        sh(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
            "--auth-root-authentication-method=normal"], stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        tool = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={work}/cg.%p"] if callgrind else []
        self.proc = subprocess.Popen(
            [*tool, "/usr/sbin/mariadbd", "--no-defaults",
             f"--datadir={data}", f"--socket={work}/s.sock", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--log-error={work}/error.log", "--user=root",
             "--innodb-buffer-pool-size=256M", "--innodb-buffer-pool-size-max=256M",
             "--innodb-use-native-aio=0",  # valgrind does not know io_uring
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"],
            stdout=subprocess.DEVNULL, stderr=open(work / "valgrind.log", "w"))
        deadline = time.monotonic() + 600  # mariadbd starts slowly under valgrind
        while self.sql("SELECT 1", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"mariadbd under valgrind did not start: see {work}/error.log")
            time.sleep(1)

    def sql(self, q, db="mysql", check=True):
        return sh(["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-N", db, "-e", q],
                  capture_output=True, text=True, check=check)

    def control(self, *args):
        sh(["callgrind_control", *args, str(self.proc.pid)], capture_output=True)

    def count(self, run):
        """Instructions the server executes while `run()` runs."""
        self.control("-i", "on")
        self.control("-z")
        run()
        before = set(glob.glob(f"{self.dir}/cg.*"))
        self.control("-d")
        self.control("-i", "off")
        total = 0
        for f in set(glob.glob(f"{self.dir}/cg.*")) - before:
            with open(f) as fh:
                for line in fh:
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
                        break
            os.remove(f)
        return total

    def stop(self):
        self.sql("SHUTDOWN", check=False)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--binary", type=Path, help="cutover binary (default: build the release one)")
    ap.add_argument("--keep", action="store_true", help="leave the servers and their files")
    args = ap.parse_args()
    ensure_tools()
    binary = args.binary
    if binary is None:
        sh(["cargo", "build", "--release", "-p", "cutover"], cwd=ROOT)
        binary = ROOT / "target" / "release" / "cutover"
    work = Path(tempfile.mkdtemp(prefix="cutover-rowcost-"))
    servers = []
    try:
        print("starting the target, and the source under callgrind (slow) ...", flush=True)
        target = Server(work / "target", callgrind=False)
        servers.append(target)
        source = Server(work / "source", callgrind=True)
        servers.append(source)
        for s in servers:
            s.sql("CREATE DATABASE sbtest")
        sh(["sysbench", "oltp_read_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={target.port}", "--mysql-user=root", "--mysql-db=sbtest", "--tables=1",
            f"--table-size={args.rows}", "prepare"], stdout=subprocess.DEVNULL)
        print(f"copying {args.rows} rows to the source ...", flush=True)
        # Through a file: a pipe into the slow server would stall the dump past its timeouts.
        dump = work / "sbtest1.sql"
        with open(dump, "w") as out:
            sh(["mariadb-dump", "-h127.0.0.1", f"-P{target.port}", "-uroot", "--single-transaction",
                "sbtest", "sbtest1"], stdout=out)
        with open(dump) as inp:
            sh(["mariadb", "-h127.0.0.1", f"-P{source.port}", "-uroot", "sbtest"], stdin=inp)
        counts = [s.sql("SELECT COUNT(*) FROM sbtest1", db="sbtest").stdout.strip() for s in servers]
        if counts != [str(args.rows)] * 2:
            sys.exit(f"unexpected row counts {counts}, wanted {args.rows} on each side")
        source.sql(SBVAR.format(coll="utf8mb4_general_ci"), db="sbtest")
        target.sql(SBVAR.format(coll="utf8mb4_bin"), db="sbtest")
        target.sql(DIFFERENCES.format(a=args.rows // 3, b=args.rows // 2, rows=args.rows), db="sbtest")
        src, tgt = (f"mysql://root@127.0.0.1:{s.port}" for s in (source, target))

        def diff(table, *extra):
            def run():
                r = subprocess.run([str(binary), "diff", "--source", src, "--target", tgt,
                                    "--tables", table, "--format", "json", "--chunk-time", "5s",
                                    *extra], capture_output=True, text=True)
                equal = table in ("sbtest.sbsame", "sbtest.sblsame", "sbtest.sbvsame")
                if r.returncode != (0 if equal else 1):  # the others differ
                    sys.exit(f"cutover diff {table} exited {r.returncode}: {r.stderr.strip()[-400:]}")
            return run

        # A diff's fixed cost (connections, introspection) is counted on a 2-row table and
        # taken off the others, as it would vanish in a large table.
        fixed = source.count(diff("sbtest.tiny"))
        print(f"fixed cost of one diff: {fixed / 1e6:.1f} M instructions", flush=True)
        floor_latin1 = FLOOR_SQL.replace("sbtest1", "sblsame")
        cases = [
            ("floor (BIT_XOR(CRC32), full scan)", lambda: source.sql(FLOOR_SQL), 0),
            ("cutover diff, integer key, 64-bit, equal", diff("sbtest.sbsame"), fixed),
            ("cutover diff, integer key, portable, equal",
             diff("sbtest.sbsame", "--row-hash", "portable"), fixed),
            ("cutover diff, integer key, crc32, equal", diff("sbtest.sbsame", "--row-hash", "crc32"), fixed),
            ("latin1: floor", lambda: source.sql(floor_latin1), 0),
            ("latin1: cutover diff, 64-bit, equal", diff("sbtest.sblsame"), fixed),
            ("latin1: cutover diff, portable, equal",
             diff("sbtest.sblsame", "--row-hash", "portable"), fixed),
            ("cutover diff, VARCHAR key general_ci vs bin, equal", diff("sbtest.sbvsame"), fixed),
            ("cutover diff, VARCHAR key, 3 differences", diff("sbtest.sbvar"), fixed),
        ]
        results = []
        for name, run, minus in cases:
            run()  # warm: buffer pool, table definitions
            per_row = (source.count(run) - minus) / args.rows
            results.append((name, per_row))
            print(f"{name:48} {per_row:8.0f} instructions/row", flush=True)
        floors = {"": results[0][1], "latin1": dict(results)["latin1: floor"]}
        print("\nratio to the floor of the same table (source server instructions per row):")
        for name, per_row in results:
            floor = floors["latin1" if name.startswith("latin1") else ""]
            print(f"  {name:48} {per_row / floor:5.2f}x")
    finally:
        if args.keep:
            print(f"kept: {work} (ports {[s.port for s in servers]})")
        else:
            for s in servers:
                s.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
