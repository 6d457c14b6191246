"""Application sources, worker side: fetch an application's artifacts (an upload, a Git repository, a
Helm chart repository, an OCI registry holding charts) and render them into Kubernetes objects (YAML
parsed; charts with ``helm template``, never installed). Every connection goes through the
outbound-address policy (``paas.outbound``).

The errors a deploy run tells apart: :class:`FetchFailed` (the repository could not be reached or
answered with an error: the run is retried) and :class:`PackageRefused` (the artifacts themselves are
wrong: a cluster-scoped object, a chart's ``crds/``, bad YAML, too large: final, with the object named).
"""

from dataclasses import dataclass, field

from catalog.templating import TemplateError


class FetchFailed(Exception):
    """A repository could not be reached, refused the credential, or does not have what was asked for
    (the message says which, without the credential); the deploy run is retried."""


class PackageRefused(TemplateError):
    """The artifacts are refused (``errors``: {field: [messages]}, each naming the file or object)."""


@dataclass
class Rendered:
    """What a source rendered into: the objects (dicts, no namespace set by us yet) and what was resolved."""

    objects: list[dict]
    commit: str = ""  # the Git commit read
    chart_version: str = ""  # the chart version rendered
    digest: str = ""  # "sha256:..." of the chart archive or the YAML bundle
    notes: list[str] = field(default_factory=list)  # warnings (e.g. templates that call lookup)
