"""Warm pools, worker side (CORE STUB: the pool-deployer helper replaces this module; see
/work/wt/CONTRACTS15.md)."""


def standby_deploy(*, standby_id: int) -> str:
    raise NotImplementedError


def standby_delete(*, standby_id: int) -> str:
    raise NotImplementedError


def handover(run, instance, step) -> None:
    raise NotImplementedError
