"""Sections higher layers add to a workspace's landing page (``/w/<id>/``): billing's budget banners.

A higher layer registers a section once (in its ``AppConfig.ready``) with :func:`landing_section_register`:
a function ``(request, project) -> {"template": ..., **context} | None`` (None: nothing for this viewer),
like the studio home's sections (``paas.sites.StudioSite.add_home_section``). The landing page renders
each returned section's template with the section as ``section``, in registration order, above its own
content. A section reads only through its own layer's selectors (so it shows only what the viewer may
see).
"""

from collections.abc import Callable

_sections: list[Callable] = []


def landing_section_register(section: Callable) -> Callable:
    """Register ``section`` (once; registering it again changes nothing). Returns it."""
    if section not in _sections:
        _sections.append(section)
    return section


def landing_sections(request, project) -> list[dict]:
    return [part for section in list(_sections) if (part := section(request, project))]
