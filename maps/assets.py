"""Leaflet and the other scripts and styles Folium's maps load, taken from the npm packages of
``maps/assets/package.json`` (installed by ``make assets``) instead of CDNs: grid centers sit on
intranets with no internet. The app serves them under ``/maps/assets/``; an exported map carries
them inside itself, fonts and images as ``data:`` URLs.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import folium
from branca.element import Element
from folium.elements import JSCSSMixin

NODE_MODULES = Path(__file__).with_name("assets") / "node_modules"
URL_PREFIX = "/maps/assets/"

# Folium's name of each link → the files that replace it, under node_modules.
FONT_AWESOME = "@fortawesome/fontawesome-free/css/"
FILES: dict[str, tuple[str, ...]] = {
    "leaflet": ("leaflet/dist/leaflet.js",),
    "jquery": ("jquery/dist/jquery.min.js",),
    "bootstrap": ("bootstrap/dist/js/bootstrap.bundle.min.js",),
    "awesome_markers": ("leaflet.awesome-markers/dist/leaflet.awesome-markers.js",),
    "leaflet_css": ("leaflet/dist/leaflet.css",),
    "bootstrap_css": ("bootstrap/dist/css/bootstrap.min.css",),
    # Markers' "fa" icons are Font Awesome's solid set: the brand and regular fonts (and the
    # v4/v5 aliases of all.css) would only make an exported map a megabyte heavier.
    "awesome_markers_font_css": (
        FONT_AWESOME + "fontawesome.min.css",
        FONT_AWESOME + "solid.min.css",
    ),
    "awesome_markers_css": ("leaflet.awesome-markers/dist/leaflet.awesome-markers.css",),
    # Left out: Bootstrap 3's glyph icons (markers with prefix="glyphicon") and folium's
    # rotated icons; no package ships them and our maps use neither.
    "glyphicons_css": (),
    "awesome_rotate_css": (),
}


class AssetsMissing(RuntimeError):
    """The npm packages are not installed: the map would show nothing."""


def check_installed() -> None:
    missing = [f for files in FILES.values() for f in files if not (NODE_MODULES / f).is_file()]
    if missing:
        raise AssetsMissing(
            f"map assets are not installed ({missing[0]} is missing): run `make assets` "
            "(npm ci in maps/assets)"
        )


def served_url(file: str) -> str:
    return URL_PREFIX + file


def use_local_assets(m: folium.Map, url_of: Callable[[str], str] = served_url) -> None:
    """Point every script and style link of the map's elements at ``url_of(file)``. An element
    with a link we have no package for fails here, not silently in a browser off the internet."""
    for element in _walk(m):
        if isinstance(element, JSCSSMixin):
            element.default_js = _local(element.default_js, url_of)
            element.default_css = _local(element.default_css, url_of)


def inline_assets(m: folium.Map) -> None:
    """Make the map's HTML self-contained: each script and style sheet written into the page
    (in the order Folium would link them), its fonts and images as ``data:`` URLs."""
    header = m.get_root().header
    for element in _walk(m):
        if not isinstance(element, JSCSSMixin):
            continue
        for kind, links in (("script", element.default_js), ("style", element.default_css)):
            for name, file in _local(links, lambda file: file):
                code = _text(file)
                if f"</{kind}" in code.lower():
                    raise ValueError(f"{file} contains </{kind}: it cannot be written into a page")
                header.add_child(RawHtml(f"<{kind}>{code}</{kind}>"), name=name)
        element.default_js, element.default_css = [], []


class RawHtml(Element):
    """HTML written as it is: branca's ``Element`` would read it as a Jinja template."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html

    def render(self, **kwargs: object) -> str:
        return self.html


def _local(links: list[tuple[str, str]], url_of: Callable[[str], str]) -> list[tuple[str, str]]:
    out = []
    for name, url in links:
        if name not in FILES:
            raise AssetsMissing(f"no local copy of {name} ({url}): add it to maps/assets")
        for i, file in enumerate(FILES[name]):
            out.append((f"{name}.{i}" if i else name, url_of(file)))
    return out


def _walk(element: Element) -> Iterator[Element]:
    yield element
    for child in element._children.values():
        yield from _walk(child)


def _text(file: str) -> str:
    """A script or style sheet to write into a page; a style sheet's fonts and images inlined
    (WOFF2 only: every browser that runs Leaflet reads it)."""
    path = NODE_MODULES / file
    code = _SOURCE_MAP.sub("", path.read_text(encoding="utf-8"))
    if path.suffix == ".css":
        code = _TRUETYPE_FALLBACK.sub("", code)
        code = _URL.sub(lambda m: _inline_url(path.parent, m), code)
    return code


_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")
_TRUETYPE_FALLBACK = re.compile(r""",\s*url\([^)]*\.ttf\)\s*format\(["']truetype["']\)""")
_SOURCE_MAP = re.compile(r"/[/*]# sourceMappingURL=\S+( \*/)?")


def _inline_url(folder: Path, match: re.Match[str]) -> str:
    target = match.group(2)
    if target.startswith(("data:", "#")):
        return match.group(0)
    file = folder / target.split("?")[0].split("#")[0]
    mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return f'url("data:{mime};base64,{base64.b64encode(file.read_bytes()).decode()}")'
