"""Profile readmes: markdown rendered to HTML, then sanitised (no scripts, handlers or javascript: links)."""

import re
import threading

import markdown
import nh3

_HEADING = re.compile(r"<(/?)h([1-6])(?=[\s>])")

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


_local = threading.local()


def _markdown() -> markdown.Markdown:
    """This thread's converter, reset for each text: building one (its parser and patterns) cost more
    than converting a readme. Not shared between threads: a converter keeps state while it converts."""
    converter = getattr(_local, "converter", None)
    if converter is None:
        converter = _local.converter = markdown.Markdown(
            extensions=["fenced_code", "tables"], output_format="html"
        )
    return converter.reset()


def render_readme(text: str) -> str:
    if not text:
        return ""
    html = _markdown().convert(text)
    # A readme is shown under its page's or card's own title: its headings start two levels down.
    html = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + 2)}", html)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}, "abbr": {"title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def render_readmes(texts: list[str]) -> list[str]:
    """Render many readmes, reusing earlier renders from the cache (keyed by the text's digest, so an
    edited readme is never served stale): a catalog page of many cards renders each text once."""
    import hashlib

    from django.core.cache import cache

    keys = [f"readme:{hashlib.sha256(t.encode()).hexdigest()}" if t else "" for t in texts]
    cached = cache.get_many([k for k in keys if k])
    fresh = {}
    out = []
    for key, text in zip(keys, texts, strict=True):
        if not key:
            out.append("")
            continue
        if key not in cached and key not in fresh:
            fresh[key] = render_readme(text)
        out.append(cached.get(key, fresh.get(key)))
    if fresh:
        cache.set_many(fresh, timeout=24 * 3600)
    return out
