"""Warm pools' control loop (CORE STUB: the pool-loop helper replaces this module; see
/work/wt/CONTRACTS15.md)."""


def converge(*, pool_id: int | None = None, now=None) -> dict:
    raise NotImplementedError
