"""Safe YAML for text a user gives us (template manifests, kubeconfigs): bounded nesting, no aliases.

PyYAML composes nested collections recursively, so a document nested a few thousand levels deep
(``[[[[…`` or ``a: {b: {c: …``) ends in ``RecursionError`` — a crash, not a YAML error. The loader
below refuses nesting deeper than ``MAX_DEPTH`` with an ordinary ``yaml.YAMLError`` naming the line,
long before Python's stack runs out. Aliases are refused too: nothing we read needs them, and an
alias-expansion bomb ("billion laughs") is cheap to write.

Pure library code (PyYAML only, no Django): catalog.templating and inventory.kube both use it.
"""

from typing import Any

import yaml

from paas.jsondepth import MAX_DEPTH  # the same bound as JSON bodies


class LimitedLoaderMixin:
    """Mixed in before a PyYAML loader class: refuse aliases and nesting deeper than ``max_depth``."""

    max_depth = MAX_DEPTH
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed", event.start_mark
            )
        if self._depth >= self.max_depth:
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"the document is nested more than {self.max_depth} levels deep", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class SafeLimitedLoader(LimitedLoaderMixin, yaml.SafeLoader):
    """``yaml.SafeLoader`` with the limits above."""


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with bounded nesting and no aliases (raises ``yaml.YAMLError``)."""
    loader = SafeLimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
