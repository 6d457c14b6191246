"""Instance limits per user (``tenancy.InstanceLimit``) in the launch decision and on the size cards.

What a limit counts is what the quotas count (``instances.quota``): a user's instances in every active
state (pending, provisioning, ready, stopped, failed, deleting) count as instances, and their GPUs
(MIG slices as fractions of a GPU) except a stopped instance's, which holds only its storage. A user's
instances are those they own. A stopped instance counts against the instance limit: it keeps its
namespace and storage and starts again without a launch, so stopping would otherwise be a way round
the limit; starting it asks the GPU limit again (``want["instances"]`` is 0 for a start, as for the
quotas). Deleting an instance gives its place back once the delete has finished (it holds its
resources while it is being deleted, as for the quotas).

An org's limit counts the user's instances across the org, a workspace's those in the workspace; both
are checked, so the stricter one refuses. What a user holds is read from the usage counters
(``instances.counters``: the user in the org, the user in the workspace). The launch
(``instances.services.instance_launch``, warm-pool claims included) and the start of a stopped
instance bound them in their decision (``instances.launch_decision``), one conditional statement on
the counters, so concurrent launches of one user cannot pass a limit; :func:`limit_problems` explains
a refusal.
"""

from inventory import mig
from paas.errors import ValidationFailed
from tenancy.limit_selectors import instance_limits_applying
from tenancy.models import InstanceLimit, Project

format_gpus = mig.format_gpus_exact


class InstanceLimitReached(ValidationFailed):
    """A launch (or start) past a per-user instance limit: a 400 the user acts on (delete or stop an
    instance, choose a smaller size, ask an org admin), shown on the launch form as a quota refusal is."""

    status = 400
    code = "instance_limit"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def held(limit: InstanceLimit, user) -> dict:
    """What ``user``'s instances hold in the limit's scope: instances and GPU units (the usage
    counters of the user in the org or in the workspace, ``instances.counters``)."""
    return held_many([limit], user)[limit.pk]


def held_many(limits: list[InstanceLimit], user) -> dict[int, dict]:
    """:func:`held` of each limit, in one query."""
    from instances.counters import usage_of

    keys = {limit.pk: (limit.org_id, limit.project_id, user.pk, "") for limit in limits}
    rows = usage_of(keys.values())
    return {pk: {"instances": rows[key][4], "gpu_units": rows[key][0]} for pk, key in keys.items()}


def _scope(limit: InstanceLimit) -> str:
    return "This workspace's" if limit.project_id else "The organization's"


def _problems(limit: InstanceLimit, used: dict, want: dict, *, who: str, what: str) -> list[str]:
    problems = []
    asked = want.get("instances", 1)  # a start asks for none: the stopped instance counts already
    cap = limit.max_active_instances_per_user
    if cap is not None and asked and used["instances"] + asked > cap:
        problems.append(
            f"{_scope(limit)} limit is {_plural(cap, 'active instance')} per user and {who} "
            f"{'has' if who != 'you' else 'have'} {used['instances']} (stopped instances count too). "
            "Delete an instance you no longer need, or ask an org admin to raise the limit."
        )
    cap = limit.max_gpus_per_user
    units = want.get("gpu_units", 0)
    if cap is not None and units and used["gpu_units"] + units > cap * mig.UNITS_PER_GPU:
        owner = "your" if who == "you" else f"{who}'s"
        problems.append(
            f"{_scope(limit)} limit is {_plural(cap, 'GPU')} per user: {owner} instances hold "
            f"{format_gpus(used['gpu_units'])}, {what} needs {format_gpus(units)}. Stop or delete an "
            "instance you no longer need (a stopped instance holds no GPUs), choose a smaller size, or "
            "ask an org admin to raise the limit."
        )
    return problems


def limit_problems(
    *, project: Project, user, wants: dict, who: str = "you", what: str = "this launch", limits=None
) -> dict[object, list[str]]:
    """For each key of ``wants`` (totals as ``instances.quota.profile_totals`` gives them), what the
    org's and the workspace's limits would refuse ``user`` today."""
    limits = instance_limits_applying(project) if limits is None else limits
    result: dict[object, list[str]] = {key: [] for key in wants}
    limits = [
        limit
        for limit in limits
        if limit.max_active_instances_per_user is not None or limit.max_gpus_per_user is not None
    ]
    counts = held_many(limits, user)
    for limit in limits:
        used = counts[limit.pk]
        for key, want in wants.items():
            result[key] += _problems(limit, used, want, who=who, what=what)
    return result


def limit_check(*, project: Project, user, want: dict, actor=None, what: str = "this launch") -> None:
    """Refuse (``InstanceLimitReached``, 400 ``instance_limit``) a launch or start past a limit of
    ``user`` (the instance's owner). Call it under the quota row locks."""
    who = "you" if actor is None or actor.pk == user.pk else str(user)
    problems = limit_problems(project=project, user=user, wants={"want": want}, who=who, what=what)["want"]
    if problems:
        raise InstanceLimitReached("Instance limit reached: " + " ".join(problems))


def launch_room(*, project: Project, user, wants: dict) -> dict[object, dict]:
    """For the size cards: how many more instances of each size ``user`` may launch in ``project``
    under the limits (``more``: None when no limit bounds it) and, at 0, why (``reason``)."""
    limits = [
        limit
        for limit in instance_limits_applying(project)
        if limit.max_active_instances_per_user is not None or limit.max_gpus_per_user is not None
    ]
    used = held_many(limits, user)
    room: dict[object, dict] = {}
    for key, want in wants.items():
        more = None
        for limit in limits:
            counts = used[limit.pk]
            if limit.max_active_instances_per_user is not None:
                left = limit.max_active_instances_per_user - counts["instances"]
                more = left if more is None else min(more, left)
            units = want.get("gpu_units", 0)
            if limit.max_gpus_per_user is not None and units:
                left = (limit.max_gpus_per_user * mig.UNITS_PER_GPU - counts["gpu_units"]) // units
                more = left if more is None else min(more, left)
        more = None if more is None else max(more, 0)
        reason = ""
        if more == 0:
            refusals = [_problems(lim, used[lim.pk], want, who="you", what="this size") for lim in limits]
            reason = " ".join(problem for problems in refusals for problem in problems)
        room[key] = {"more": more, "reason": reason}
    return room


def limits_summary(*, project: Project, user) -> list[dict]:
    """The limits bounding ``user`` in ``project`` with what they hold against each (the API's and the
    portal's workspace summary)."""
    rows = []
    limits = instance_limits_applying(project)
    held_by_limit = held_many(limits, user)
    for limit in limits:
        counts = held_by_limit[limit.pk]
        rows.append(
            {
                "scope": limit.scope,
                "max_active_instances_per_user": limit.max_active_instances_per_user,
                "max_gpus_per_user": limit.max_gpus_per_user,
                "instances": counts["instances"],
                "gpu_units": counts["gpu_units"],
                "gpus": format_gpus(counts["gpu_units"]),
            }
        )
    return rows
