"""The front-end files of the widgets, and the Mathpix Markdown renderer they load.

``static/widgets.js`` / ``widgets.css`` (panel, results), ``review.*`` and ``ink.*`` are our own
code (no build step). What the three modules share (DOM helpers, loading the renderer) is
``static/renderer_loader.js``, once: :func:`esm` puts it before each module. The renderer,
``static/mmd_renderer.js``, is Mathpix's ``mathpix-markdown-it`` bundled by ``js/build.mjs``
(npm, lock file in ``js/``); it is git-ignored and shipped in the wheel. It is 4 MB, so it is
not put into the widgets' synced state (which notebooks save, once per widget): a view asks
the kernel for it with a custom message, gets it once per page (gzip when the browser can
unpack it) and keeps it for every other view of that page.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUILD_HINT", "CSS", "LOADER", "RENDERER", "Renderer", "esm", "find_renderer"]

STATIC = Path(__file__).parent / "static"
CSS = STATIC / "widgets.css"
LOADER = STATIC / "renderer_loader.js"
RENDERER = STATIC / "mmd_renderer.js"


def esm(name: str) -> str:
    """A widget's anywidget ``_esm``: ``static/renderer_loader.js``, then ``static/<name>``."""
    loader = LOADER.read_text(encoding="utf-8")
    module = (STATIC / name).read_text(encoding="utf-8")
    return f"{loader}\n// ---- {name} ----\n\n{module}"


#: What a checkout without the built renderer says, in the panel and in every display.
BUILD_HINT = (
    "The Mathpix Markdown renderer is not built in this checkout "
    "(mathpix_nb/jupyter/static/mmd_renderer.js is missing). Build it once from the "
    "repository root with: npm ci --prefix js && npm run build --prefix js "
    "(needs Node.js 18+; bash scripts/test does the same). Installed wheels include it."
)


@dataclass(frozen=True)
class Renderer:
    """The built renderer: its id (sha256 prefix, the browser's cache key) and its bytes."""

    id: str
    version: str
    data: bytes
    _gzip: list[bytes]

    def payload(self, gzip_ok: bool) -> tuple[str, bytes]:
        """(encoding, bytes) to send; gzip is made once and kept."""
        if not gzip_ok:
            return "identity", self.data
        if not self._gzip:
            self._gzip.append(gzip.compress(self.data, compresslevel=6, mtime=0))
        return "gzip", self._gzip[0]


_lock = threading.Lock()
_cache: dict[tuple[str, int, int], Renderer] = {}


def find_renderer(path: Path | None = None) -> Renderer | None:
    """The built renderer, or None in a checkout where ``js/`` was not built yet."""
    path = RENDERER if path is None else path
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _cache.get(key)
        if found is None:
            data = path.read_bytes()
            version = "?"
            stamp = path.with_suffix(".json")
            with contextlib.suppress(OSError, ValueError, KeyError):
                version = str(json.loads(stamp.read_text())["mathpix-markdown-it"])
            digest = hashlib.sha256(data).hexdigest()[:16]
            found = Renderer(id=f"{version}-{digest}", version=version, data=data, _gzip=[])
            _cache.clear()
            _cache[key] = found
        return found
