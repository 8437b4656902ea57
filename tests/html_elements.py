"""A small reader of HTML for tests: every element with its attributes, its text and the
drill section it sits in, from our own output or from a browser's dump of the DOM; and a
check that a page references nothing outside itself."""
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict
    section: int      # 1-based index of the enclosing <section class="drill">, 0 outside any
    text: str = ""
    classes: set = field(default_factory=set)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.open, self.sections = [], [], 0

    def handle_starttag(self, tag, attrs):
        element = self._element(tag, attrs)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        self._element(tag, attrs)

    def _element(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        classes = set(attrs.get("class", "").split())
        if tag == "section" and "drill" in classes:
            self.sections += 1
        inside = next((e.section for e in reversed(self.open) if e.tag == "section" and "drill" in e.classes), 0)
        element = Element(tag, attrs, self.sections if tag == "section" and "drill" in classes else inside,
                          classes=classes)
        self.elements.append(element)
        return element

    def handle_endtag(self, tag):
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                break

    def handle_data(self, data):
        for element in self.open:
            element.text += data


def elements(html):
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements


def with_class(found, css_class, section=None):
    return [e for e in found if css_class in e.classes and (section is None or e.section == section)]


def metric_values(found, section):
    """{metric: shown text} of the cells with data-metric in one drill section."""
    return {e.attrs["data-metric"]: e.text.strip() for e in found
            if e.section == section and "data-metric" in e.attrs}


def external_references(html):
    """Every src/href/url(...) that leaves the page, and every attribute naming http(s)://.
    The SVG namespace is a name, never fetched; it is the one http address allowed."""
    problems = [m.group(0) for m in re.finditer(r"""(?:src|href)\s*=\s*(?!["']?#)["']?[^"'\s>]*""", html, re.I)]
    problems += [m.group(0) for m in re.finditer(r"""url\(\s*(?!["']?#)[^)]*\)""", html, re.I)]
    for element in elements(html):
        for name, value in element.attrs.items():
            if re.search(r"https?://", value, re.I) and (name, value) != ("xmlns", "http://www.w3.org/2000/svg"):
                problems.append(f"{element.tag} {name}={value}")
    return problems
