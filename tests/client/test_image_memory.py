"""Memory and missing-extra behaviour of image preparation, measured in fresh subprocesses.

* Images just under the 180 Mpx guard: a 170 Mpx JPEG is decoded at 1/8 scale (DCT scaling),
  so the process grows by tens of MB, not the ~680 MB a full decode takes; a 170 Mpx RGB PNG
  (which cannot be decoded at reduced size) is refused before decoding, naming
  ``max_decode_bytes`` and the fix. Peak RSS comes from ``getrusage`` in a process that did
  nothing else.
* Without OpenCV, a format only OpenCV reads (PFM, written here by hand) is refused by the
  client with the install hint, and the local server answers ``image_decode_error`` naming the
  ``[opencv]`` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage")

ROOT = Path(__file__).resolve().parents[2]
# 15104 x 11264 = 170.1 Mpx: under the 180 Mpx guard, ~680 MB once decoded as RGB
SIZE = (15104, 11264)

MAKE = """
import sys
from PIL import Image, ImageDraw
width, height = {size}
im = Image.new("RGB", (width, height), "white")
draw = ImageDraw.Draw(im)
for y in range(200, height, 400):  # text-like bars, so the page is not blank
    draw.rectangle((300, y, width - 300, y + 40), fill=(10, 10, 10))
im.save(sys.argv[1] + "/big.jpg", quality=80)
im.save(sys.argv[1] + "/big.png", compress_level=1)
"""

MEASURE = """
import json, resource, sys
from mathpix_nb import ImageError, prepare_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    p = prepare_image(sys.argv[1])
    outcome = {{"ok": True, "size": [p.width, p.height], "bytes": len(p.data)}}
except ImageError as exc:
    outcome = {{"ok": False, "error": str(exc)}}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome["growth_mb"] = (after - before) / 1024  # ru_maxrss is in KiB on Linux
print(json.dumps(outcome))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _python(code: str, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    _python(MAKE.format(size=SIZE), str(folder))
    return folder


def _measure(path: Path) -> dict[str, Any]:
    return dict(json.loads(_python(MEASURE.format(), str(path)).strip().splitlines()[-1]))


@pytest.mark.timeout(60)
def test_170_mpx_jpeg_is_decoded_at_reduced_size(big_files: Path) -> None:
    outcome = _measure(big_files / "big.jpg")
    assert outcome["ok"], outcome
    width, height = outcome["size"]
    assert max(width, height) >= 1750  # the legibility floor still holds
    assert outcome["growth_mb"] < 120, outcome  # a full RGB decode is ~680 MB


@pytest.mark.timeout(60)
def test_170_mpx_png_is_refused_before_decoding(big_files: Path) -> None:
    outcome = _measure(big_files / "big.png")
    assert not outcome["ok"]
    assert "max_decode_bytes" in outcome["error"] and "15104x11264" in outcome["error"]
    assert "Fix:" in outcome["error"]
    assert outcome["growth_mb"] < 40, outcome  # never decoded (the file itself is ~2 MB)


def _pfm(width: int = 64, height: int = 32) -> bytes:
    """A colour PFM (little-endian float RGB, bottom row first) with a dark bar. (Pillow reads
    only gray PFMs; colour ones are OpenCV's.)"""
    import struct

    rows = []
    for y in range(height):
        value = 0.05 if 10 <= y < 20 else 0.9
        rows.append(struct.pack(f"<{3 * width}f", *([value] * (3 * width))))
    return f"PF\n{width} {height}\n-1.0\n".encode() + b"".join(rows)


WITHOUT_OPENCV = """
import json, sys
sys.modules["cv2"] = None  # import cv2 now raises ImportError, as if it were not installed
from mathpix_nb import ImageError, Mathpix, OcrError, prepare_image
from mathpix_nb.server import LocalServer
data = open(sys.argv[1], "rb").read()
out = {}
try:
    prepare_image(data)
except ImageError as exc:
    out["client"] = str(exc)
with LocalServer(engine="echo") as srv:
    client = Mathpix(srv.app_id, srv.app_key, region_urls=srv.urls)
    try:
        client.text(data, prepare=False)
    except OcrError as exc:
        out["server"] = exc.error_id + ": " + str(exc)
    client.close()
print(json.dumps(out))
"""


@pytest.mark.timeout(30)
def test_without_opencv_client_and_server_say_what_to_install(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    path = tmp_path / "light.pfm"
    path.write_bytes(_pfm())
    out = json.loads(_python(WITHOUT_OPENCV, str(path), timeout=30).strip().splitlines()[-1])
    assert "PFM" in out["client"] and "pip install 'mathpix_nb[opencv]'" in out["client"]
    assert "prepare=False" in out["client"]  # the other way out
    assert out["server"].startswith("image_decode_error")
    assert "mathpix_nb[opencv]" in out["server"]


def test_with_opencv_the_hand_written_pfm_is_prepared() -> None:
    """The same file with OpenCV installed: decoded, tone-mapped, sent as an 8-bit image."""
    from mathpix_nb import _image_cv, prepare_image

    if not _image_cv.opencv_reads("PFM"):
        pytest.skip("needs opencv-python-headless")
    prepared = prepare_image(_pfm())
    assert (prepared.width, prepared.height, prepared.decoder) == (64, 32, "opencv")
    assert prepared.content_type in ("image/png", "image/jpeg")
