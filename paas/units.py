"""Sizes in bytes: one name, so no module spells ``2**30`` again."""

GIB = 2**30
