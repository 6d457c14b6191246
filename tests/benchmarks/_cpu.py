"""Where a benchmark's CPU time goes: every process's CPU time on this machine (``/proc/<pid>/stat``),
sampled before and after a window and grouped (the web server's process group, PostgreSQL, the
benchmark's own client threads, the rest), beside the machine's busy time (``/proc/stat``).

A burst whose busy time is close to ``cores x wall time`` is bound by the machine's CPU: its wall time
cannot go below ``busy / cores`` however the work is scheduled. The launch benchmark prints this to
show what its targets ask of this machine (Linux only, as the suite is)."""

import os
import time
from collections import Counter
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


def _process_times() -> dict[int, tuple[str, int, float]]:
    """{pid: (command, process group, CPU seconds so far)} of every process that can be read."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:  # (it ended between the listing and the read)
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # After the command: state, ppid, pgrp, ... utime (14th field of the line), stime (15th).
        found[int(entry.name)] = (command, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def _machine_busy() -> float:
    """CPU seconds the machine spent not idle (every core), from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS


@dataclass
class CpuWindow:
    """``with CpuWindow(server_group=pid) as window: ...``; then ``window.groups`` (CPU seconds by
    group), ``window.busy`` (the machine's busy CPU seconds) and ``window.wall`` (seconds)."""

    server_group: int | None = None
    groups: Counter = field(default_factory=Counter)
    busy: float = 0.0
    wall: float = 0.0

    def __enter__(self) -> "CpuWindow":
        self._before, self._busy, self._started = _process_times(), _machine_busy(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._started
        self.busy = _machine_busy() - self._busy
        me = os.getpid()
        for pid, (command, group, seconds) in _process_times().items():
            used = seconds - self._before.get(pid, (command, group, 0.0))[2]
            if pid == me:
                name = "clients (this benchmark)"
            elif self.server_group is not None and group == self.server_group:
                name = "web server"
            elif command == "postgres":
                name = "PostgreSQL"
            else:
                name = "other"
            self.groups[name] += used

    def summary(self, *, per: int, what: str) -> str:
        """One line: the CPU by group, per ``what`` (``per`` of them in the window), and the floor."""
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.groups.most_common())
        return (
            f"  CPU in this window ({self.wall:.2f} s wall, {cores} cores): machine busy {self.busy:.2f} s "
            f"({100 * self.busy / (cores * self.wall):.0f}% of the cores); {parts}. Per {what}: "
            f"{1000 * self.busy / per:.1f} ms of machine CPU, of which web server "
            f"{1000 * self.groups['web server'] / per:.1f} ms and PostgreSQL "
            f"{1000 * self.groups['PostgreSQL'] / per:.1f} ms; at that cost {per} of them need at least "
            f"{self.busy / cores:.2f} s on {cores} cores"
        )


def settle(*, server_group: int, timeout: float = 120.0, window: float = 0.3) -> float:
    """Wait until the web server's processes are idle (under 10% of a core over ``window`` seconds),
    so that a measured window does not carry a worker still starting; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with CpuWindow(server_group=server_group) as sample:
            time.sleep(window)  # (a sampling window, not a wait for an event)
        if sample.groups["web server"] < 0.1 * window:
            break
    return time.perf_counter() - started
