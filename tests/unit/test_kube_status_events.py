"""Which events an object's status shows: in time order whichever way the API server wrote the time,
and a warning kept over routine events when there are more than fit."""

from inventory.kube import status


def _event(last, reason="ScalingReplicaSet", kind="Normal"):
    return {
        "object": "Deployment/hello",
        "type": kind,
        "reason": reason,
        "message": "",
        "count": 1,
        "last": last,
    }


def test_seconds_and_microseconds_sort_in_time_order():
    rows = status._event_rows(
        [
            {
                "involvedObject": {"kind": "Pod", "name": "p"},
                "reason": "Late",
                "lastTimestamp": "2026-12-01T02:41:54Z",
            },
            {
                "involvedObject": {"kind": "Pod", "name": "p"},
                "reason": "Early",
                "eventTime": "2026-12-01T02:41:53.9Z",
            },
            {
                "involvedObject": {"kind": "Pod", "name": "p"},
                "reason": "Latest",
                "eventTime": "2026-12-01T02:41:54.758642Z",
            },
        ]
    )
    assert [e["reason"] for e in rows[("Pod", "p")]] == ["Early", "Late", "Latest"]


def test_a_warning_is_kept_over_routine_events_of_the_same_moment():
    routine = [_event(f"2026-12-01T02:41:{second:02d}Z") for second in range(40, 55)]
    warning = _event("2026-12-01T02:41:44.758642Z", reason="FailedScheduling", kind="Warning")
    shown = status.recent([*routine, warning], limit=5)
    assert [e["reason"] for e in shown].count("FailedScheduling") == 1
    assert len(shown) == 5 and shown[0] is warning  # oldest first
    assert [e["last"] for e in shown[1:]] == [f"2026-12-01T02:41:{s}Z" for s in (51, 52, 53, 54)]


def test_an_unreadable_time_sorts_first_and_does_not_fail():
    shown = status.recent(
        [_event("2026-12-01T02:41:54Z"), _event("yesterday"), _event("2026-12-01T02:41:53")]
    )
    assert [e["last"] for e in shown] == ["yesterday", "2026-12-01T02:41:53", "2026-12-01T02:41:54Z"]
