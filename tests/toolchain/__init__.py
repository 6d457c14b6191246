"""Tools the integration tests drive, built from their pinned Go modules (see ``build.py``)."""
