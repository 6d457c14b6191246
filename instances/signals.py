"""Signals instances sends so that higher layers (billing) take part without instances importing them.

The two hooks by which a higher layer joins an instances transaction are this signal and the launch
checks (``instances.launch_checks``); docs/architecture.md names both.
"""

from django.dispatch import Signal

#: Sent by :func:`instances.states.transition` for every state change of a compute instance, after the
#: new state is saved, synchronously inside the caller's transaction (the instance's row is locked):
#: ``sender`` (the model class), ``instance``, ``previous`` and ``state`` (State values), ``reason``.
#: It is sent with ``send`` (not ``send_robust``): a receiver that raises rolls the change back. Metering
#: subscribes here so that usage periods open and close exactly with the states that hold capacity.
instance_state_changed = Signal()
