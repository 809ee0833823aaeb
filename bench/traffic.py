"""Helpers shared by the benches that record MySQL traffic (bench/proxy.py, bench/pcap.py,
bench/decode.py): shell commands, tools from apt, free ports, `tcpdump -i lo` of a port, and a
workload's records by session."""

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh(cmd, **kw):
    """Runs `cmd` (a list, or a string for the shell), failing on a non-zero exit."""
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, text=True, **kw)


def ensure_tools(apt):
    """Installs the Debian packages of the executables in `apt` (executable: package) that
    are not on the PATH."""
    missing = sorted({pkg for exe, pkg in apt.items() if not shutil.which(exe)})
    if missing:
        print(f"installing {' '.join(missing)}", flush=True)
        sh(["apt-get", "update"])
        sh(["apt-get", "install", "-y", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tcpdump(pcap, port):
    """`tcpdump -i lo` of `port` into `pcap`, once it listens (it writes each packet as it
    comes, -U)."""
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-Z", "root", "-w", str(pcap),
                                f"tcp port {port}"], stderr=subprocess.PIPE, text=True)
    for line in tcpdump.stderr:
        if "listening on" in line:
            break
    return tcpdump


def stop_tcpdump(tcpdump, pcap):
    """Stops tcpdump once `pcap` has stopped growing (every packet written)."""
    last, stable = -1, 0
    while stable < 10:
        size = Path(pcap).stat().st_size
        stable = stable + 1 if size == last else 0
        last = size
        time.sleep(0.1)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(timeout=30)


def records(cutover, workload):
    """A workload's records by session, as `cutover workload head` prints them."""
    out = sh([cutover, "workload", "head", "-n", "100000000", str(workload)], capture_output=True).stdout
    by = collections.defaultdict(list)
    for line in out.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "session" in r:
            by[r["session"]].append(r)
    return by


def clean_up(cutover, sandbox, work, keep):
    """Stops the bench's sandbox, and removes its working directory unless `keep` (then
    printed)."""
    subprocess.run([cutover, "sandbox", "down", "--dir", str(sandbox)], capture_output=True)
    if keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def write_results(name, result):
    """`result` as bench/out/NAME-<date>.json (printed)."""
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    dest = out_dir / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    dest.write_text(json.dumps(result, indent=2))
    print(f"results: {dest}")
