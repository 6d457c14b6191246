"""The CPU accounting the launch and deploy benchmarks print (tests/benchmarks/_cpu.py) puts each
process's CPU time in the right group: a process the benchmark named, its child, and this process."""

import subprocess
import sys
import time

from tests.benchmarks._cpu import CpuWindow

# Burns 0.4 s of CPU, says so, then stays alive (a process that ended can no longer be read in /proc).
BURN = (
    "import sys, time\nend = time.process_time() + 0.4\nwhile time.process_time() < end:\n    pass\n"
    "print('burnt', flush=True)\nsys.stdin.read()\n"
)


def test_a_window_counts_a_named_process_with_its_children_and_this_process_apart():
    # The named process only starts the one that burns (as uvicorn starts its workers).
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
    server = subprocess.Popen(
        [sys.executable, "-c", parent],
        start_new_session=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with CpuWindow(named={server.pid: "web server"}) as window:
            end = time.process_time() + 0.2
            while time.process_time() < end:
                pass
            assert server.stdout.readline() == "burnt\n"
    finally:
        server.communicate(timeout=60)
    assert window.groups["web server"] >= 0.3  # (0.4 s burnt, less the start before the window)
    assert 0.15 <= window.groups["clients (this benchmark)"] < 0.55  # (not the other process's 0.4 s)
    assert window.busy >= 0.45
    assert window.wall >= 0.2
    line = window.summary(per=10, what="request")
    assert "Per request:" in line and "web server" in line
