"""What a browser would submit from a page's main form: the studio tests fill pages as a person does."""

from html.parser import HTMLParser


class _FormParser(HTMLParser):
    """The fields a browser would submit from the page's main form (inputs, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id", "").endswith("_form") or a.get("method", "").lower() == "post"):
            self._in_form = self._in_form or a.get("id") != "changelist-search"
        if not self._in_form or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in {"submit", "button", "file", "image", "reset"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            self.data.append((name, a.get("value", "on" if kind in {"checkbox", "radio"} else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, self._text.lstrip("\n")))
            self._textarea = None
        elif tag == "form":
            self._in_form = False


def form_data(html: str) -> dict[str, list[str]]:
    """The fields of the page's main form, as a browser would submit them (each name with its values)."""
    parser = _FormParser()
    parser.feed(html)
    data: dict[str, list[str]] = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    return data
