"""The errors and the result type of ``catalog.sources`` (re-exported there; a module of their own so the
source modules can import them without importing the package's dispatch)."""

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
