"""What a load run left behind, read back: the locustfile's result file (every response time, status
counts and unexpected answers per kind, and the span from the first request to the last answer), as
requests per second and p50/p95 per kind.

Plain Python (no Django, no locust): the suite's test and the benchmark both use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from tests.load.kinds import BASELINE, EXPECTED


@dataclass
class Row:
    kind: str
    count: int
    failures: int
    rps: float
    p50: float  # ms
    p95: float  # ms
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    rows: list[Row]
    total: Row
    unexpected: dict[str, dict[str, int]]
    seconds: float  # from the first request to the last answer
    request_ids: dict[str, list[str]] = field(default_factory=dict)  # (to find them in the server's log)

    def row(self, kind: str) -> Row | None:
        return next((row for row in self.rows if row.kind == kind), None)

    def server_errors(self) -> dict[str, dict[str, int]]:
        """kind -> {5xx status: count}: what fails the run whatever else happened."""
        found = {}
        for row in self.rows:
            errors = {status: n for status, n in row.statuses.items() if status.startswith("5")}
            if errors:
                found[row.kind] = errors
        return found

    def problems(self) -> list[str]:
        """Why the run fails: any 5xx; any answer a kind may not give (``kinds.EXPECTED``), a request
        without an answer among them; a kind the traffic never sent (the mix is the point); the
        designed quota refusal never met; an unknown kind (a locustfile out of step with ``kinds``)."""
        problems = [f"{kind}: server errors {errors}" for kind, errors in self.server_errors().items()]
        for kind, answers in sorted(self.unexpected.items()):  # (a 5xx among them with its body)
            problems += [f"{kind}: {n} x {answer}" for answer, n in sorted(answers.items())]
            if self.request_ids.get(kind):
                problems.append(f"{kind}: request ids {', '.join(self.request_ids[kind])}")
        seen = {row.kind for row in self.rows if row.count}
        problems += [f"{kind}: never sent" for kind in EXPECTED if kind not in seen]
        problems += [f"{kind}: not a known kind" for kind in sorted(seen - set(EXPECTED))]
        tight = self.row("api: launch (tight quota)")
        if tight and not tight.statuses.get("409"):
            problems.append("api: launch (tight quota): the quota refusal (409) never happened")
        return problems

    def table(self, *, baseline_ratios: bool = False) -> str:
        """Requests per second, p50/p95, failures and statuses per kind, the baseline (the trivial
        endpoint) first, then the total; ``baseline_ratios``: also each p50 and p95 as a multiple of
        the baseline's."""
        baseline = self.row(BASELINE)
        ordered = [baseline] if baseline else []
        ordered += sorted((row for row in self.rows if row.kind != BASELINE), key=lambda r: r.kind)
        width = max(len(row.kind) for row in [*ordered, self.total])
        ratios = baseline_ratios and baseline is not None and baseline.p50 > 0 and baseline.p95 > 0
        lines = [
            f"{'kind':<{width}}  {'requests':>8}  {'req/s':>6}  {'p50 ms':>7}  {'p95 ms':>7}"
            + ("  x base p50  x base p95" if ratios else "")
            + f"  {'failed':>6}  statuses",
        ]
        for row in [*ordered, self.total]:
            statuses = " ".join(f"{status}:{n}" for status, n in sorted(row.statuses.items()))
            multiples = (
                f"  {row.p50 / baseline.p50:>10.1f}  {row.p95 / baseline.p95:>10.1f}" if ratios else ""
            )
            lines.append(
                f"{row.kind:<{width}}  {row.count:>8}  {row.rps:>6.1f}  {row.p50:>7.0f}  {row.p95:>7.0f}"
                f"{multiples}  {row.failures:>6}  {statuses}"
            )
        errors = self.problems()
        lines.append(
            f"over {self.seconds:.1f} s; errors: {len(errors)}"
            + "".join(f"\n  {problem}" for problem in errors)
        )
        return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def read(result_file: Path) -> Result:
    """Read a finished run from the locustfile's result file."""
    outcome = json.loads(result_file.read_text())
    seconds = outcome["seconds"] or 1.0

    def row(kind: str, times: list[float], statuses: dict[str, int]) -> Row:
        return Row(
            kind=kind,
            count=len(times),
            failures=sum(outcome["unexpected"].get(kind, {}).values()),  # (every 5xx and no answer too)
            rps=len(times) / seconds,
            p50=percentile(times, 0.50),
            p95=percentile(times, 0.95),
            statuses=statuses,
        )

    rows = [row(kind, times, outcome["statuses"].get(kind, {})) for kind, times in outcome["times"].items()]
    everything: dict[str, int] = {}
    for counts in outcome["statuses"].values():
        for status, n in counts.items():
            everything[status] = everything.get(status, 0) + n
    total = row("all", [t for times in outcome["times"].values() for t in times], everything)
    total.failures = sum(sum(answers.values()) for answers in outcome["unexpected"].values())
    return Result(
        rows=rows,
        total=total,
        unexpected=outcome["unexpected"],
        seconds=seconds,
        request_ids=outcome.get("request_ids", {}),
    )
