"""Where a benchmark's CPU time goes: every process's CPU time on this machine (``/proc/<pid>/stat``),
sampled before and after a window and grouped (processes the benchmark started, with their
descendants, under the names it gives them; the benchmark itself; every other process by its command:
postgres, kube-apiserver, etcd...), beside the machine's busy time (``/proc/stat``).

A burst whose busy time is close to ``cores x wall time`` is bound by the machine's CPU: its wall time
cannot go below ``busy / cores`` however the work is scheduled. The launch benchmark prints this to
show what its targets ask of this machine (Linux only, as the suite is)."""

import os
import time
from collections import Counter
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


def _process_times() -> dict[int, tuple[str, int, float]]:
    """{pid: (command, parent pid, CPU seconds so far)} of every process that can be read."""
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
        found[int(entry.name)] = (command, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def _machine_busy() -> float:
    """CPU seconds the machine spent not idle (every core), from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS


@dataclass
class CpuWindow:
    """``with CpuWindow(named={server.pid: "web server"}) as window: ...``; then ``window.groups`` (CPU
    seconds by group), ``window.busy`` (the machine's busy CPU seconds) and ``window.wall`` (seconds).
    ``named``: processes the benchmark started; each counts with its descendants under that name.
    PostgreSQL's processes are ``PostgreSQL``, the benchmark's own ``clients (this benchmark)``, any
    other by its command. A process that ended inside the window is not counted."""

    named: dict[int, str] = field(default_factory=dict)
    groups: Counter = field(default_factory=Counter)
    busy: float = 0.0
    wall: float = 0.0

    def __enter__(self) -> "CpuWindow":
        self._before, self._busy, self._started = _process_times(), _machine_busy(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._started
        self.busy = _machine_busy() - self._busy
        after = _process_times()
        for pid, (command, _, seconds) in after.items():
            used = seconds - self._before.get(pid, (command, 0, 0.0))[2]
            self.groups[self._name(pid, command, after)] += used

    def _name(self, pid: int, command: str, processes: dict) -> str:
        if pid == os.getpid():
            return "clients (this benchmark)"
        ancestor, seen = pid, set()
        while ancestor in processes and ancestor not in seen:
            if ancestor in self.named:
                return self.named[ancestor]
            seen.add(ancestor)
            ancestor = processes[ancestor][1]
        return "PostgreSQL" if command == "postgres" else command

    def summary(self, *, per: int, what: str, detail: tuple[str, ...] = ("web server", "PostgreSQL")) -> str:
        """One line: the CPU by group, per ``what`` (``per`` of them in the window), and the floor."""
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.groups.most_common(8))
        shares = " and ".join(f"{name} {1000 * self.groups[name] / per:.1f} ms" for name in detail)
        return (
            f"  CPU in this window ({self.wall:.2f} s wall, {cores} cores): machine busy {self.busy:.2f} s "
            f"({100 * self.busy / (cores * self.wall):.0f}% of the cores); {parts}. Per {what}: "
            f"{1000 * self.busy / per:.1f} ms of machine CPU, of which {shares}; at that cost {per} of "
            f"them need at least {self.busy / cores:.2f} s on {cores} cores"
        )


def settle(*, server: int, timeout: float = 120.0, window: float = 0.3) -> float:
    """Wait until the web server's processes are idle (under 10% of a core over ``window`` seconds),
    so that a measured window does not carry a worker still starting; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with CpuWindow(named={server: "web server"}) as sample:
            time.sleep(window)  # (a sampling window, not a wait for an event)
        if sample.groups["web server"] < 0.1 * window:
            break
    return time.perf_counter() - started
