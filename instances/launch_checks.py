"""Launch checks: rules of higher layers (billing's budgets and limits) that may refuse a launch.

A higher layer registers a check once (in its ``AppConfig.ready``) with :func:`launch_check_register`;
``instances.services.instance_launch`` calls every registered check through :func:`launch_checks_run`
inside the launch's transaction once placement is known, before the launch's decision on the usage
counters and without a lock (``instances.launch_decision``): a check must not depend on concurrent
launches (a budget's spend does not). ``instances.service_instances`` calls them too when a service is
deployed onto a compute instance, under that instance's row lock. A check is called with keyword
arguments ``actor``, ``project``, ``profile`` (a compute or a service profile), ``cluster``, ``totals``
(what the instance will hold: gpus, gpu_units, cpu_millis, ...) and ``kind`` (``"compute"`` or
``"service"``), and must accept further keywords (``**kwargs``) added later. It refuses by raising a
``paas.errors.ApplicationError`` (``Conflict`` with a ``code``, usually), which the API and portal show
as they show an over-quota refusal; returning allows the launch.
"""

from collections.abc import Callable

_checks: list[Callable[..., None]] = []


def launch_check_register(check: Callable[..., None]) -> Callable[..., None]:
    """Register ``check`` (once; registering it again changes nothing). Returns it: usable as a decorator."""
    if check not in _checks:
        _checks.append(check)
    return check


def launch_check_unregister(check: Callable[..., None]) -> None:
    if check in _checks:
        _checks.remove(check)


def launch_checks_run(**facts) -> None:
    """Call every registered check, in registration order; the first to raise refuses the launch."""
    for check in list(_checks):
        check(**facts)
