"""Demo catalog: the system catalog, shared with every org."""

from catalog import system
from tenancy.models import User


def seed() -> list[str]:
    loaded = system.load(actor=User.objects.get(username="operator"))
    return [
        f"Demo catalog: {len(loaded)} system catalog items loaded." if loaded else "Demo catalog: loaded."
    ]
