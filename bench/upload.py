"""Upload bench: what our image preparation saves, and what it costs.

Makes its own images (phone-photo-sized JPEGs with EXIF orientation, and PNG screenshots of
text and line art), then reports per image and in total:

* bytes on the wire for our preparation (multipart ``file`` + ``options_json``), for the file
  uploaded as is (multipart), and for base64 JSON (``{"src": "data:..."}``, the old way);
* client preparation time (best of 3);
* with the offline engine behind ``LocalServer``: whether the OCR text of the bench's text
  images is unchanged by our downscaling (words of the prepared upload vs the full-resolution
  upright image), and for the photos how many words survive uploading the file as is (the
  API ignores EXIF orientation).

Run: ``python bench/upload.py`` (``--no-ocr`` skips the OCR comparison).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mathpix_nb import ImagePrep, Mathpix, prepare_image

T = TypeVar("T")

# The reference for OCR: upright, full resolution, near-lossless (must fit the 5 MB body limit).
REFERENCE = ImagePrep(target_bytes=4_500_000, max_side=1 << 30, min_side=1 << 30, jpeg_quality=95)


@dataclass
class Case:
    name: str
    data: bytes
    kind: str  # "photo" | "screenshot"
    words: list[str]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_block(
    draw: ImageDraw.ImageDraw,
    x: int,
    y: int,
    lines: list[str],
    size: int,
    fill: Any,
    spacing: float = 1.6,
) -> None:
    for i, line in enumerate(lines):
        draw.text((x, y + int(i * size * spacing)), line, fill=fill, font=_font(size))


PAGE = [
    "Chapter 4 Linear equations",
    "A linear equation has the form ax + b = 0",
    "Subtract b from both sides and divide by a",
    "Example: 3x + 7 = 22 gives x = 5",
    "Check the answer by substitution",
    "Exercises for Monday morning",
]


def phone_photo(seed: int, orientation: int, lines: list[str]) -> bytes:
    """A 4032x3024 photo of a printed page on a desk, stored as a camera does (EXIF)."""
    rng = np.random.default_rng(seed)
    width, height = 4032, 3024
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    desk = 110 + 35 * np.sin(xx / 400 + seed) + 20 * np.cos(yy / 250)
    rgb = np.stack([desk * 0.95, desk * 0.78, desk * 0.58], axis=-1)
    photo = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    paper = Image.new("RGB", (2900, 2100), (236, 234, 226))
    _text_block(ImageDraw.Draw(paper), 160, 160, lines, 110, (30, 30, 45))
    photo.paste(paper, (560, 460))
    noisy = np.asarray(photo, dtype=np.float32) + rng.normal(0, 5, (height, width, 3))
    photo = Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(1.0)
    )
    # the sensor's raw orientation: what a camera stores before EXIF turns it upright
    raw = {
        1: photo,
        6: photo.transpose(Image.Transpose.ROTATE_90),
        8: photo.transpose(Image.Transpose.ROTATE_270),
        3: photo.transpose(Image.Transpose.ROTATE_180),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    raw.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def screenshot_text(width: int, height: int, lines: list[str], size: int) -> bytes:
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, width, 60), fill=(235, 238, 245))
    _text_block(draw, 40, 110, lines, size, (20, 20, 20))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def screenshot_line_art(width: int, height: int, lines: list[str]) -> bytes:
    """A plot-like screenshot: axes, a curve and a few labels."""
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    draw.line((120, height - 200, width - 80, height - 200), fill="black", width=3)
    draw.line((120, 80, 120, height - 200), fill="black", width=3)
    xs = np.linspace(0, 1, 400)
    pts = [
        (120 + x * (width - 220), height - 200 - (np.sin(x * 9) * 0.4 + 0.5) * (height - 320))
        for x in xs
    ]
    draw.line(pts, fill=(30, 90, 200), width=4)
    _text_block(draw, 160, height - 170, lines, 48, "black")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def make_cases() -> list[Case]:
    notes = [
        "Screenshot of lecture notes",
        "The derivative of sin x is cos x",
        "Integrate by parts when a product appears",
        "Remember the constant of integration",
    ]
    plot = ["Figure 2 damped oscillation over time"]
    cases = [
        Case("photo_rot90.jpg", phone_photo(1, 6, PAGE), "photo", PAGE),
        Case("photo_rot270.jpg", phone_photo(2, 8, PAGE[::-1]), "photo", PAGE),
        Case("photo_upright.jpg", phone_photo(3, 1, PAGE[1:]), "photo", PAGE[1:]),
        Case("screen_notes.png", screenshot_text(2560, 1440, notes, 56), "screenshot", notes),
        Case(
            "screen_small.png", screenshot_text(1200, 500, notes[:2], 40), "screenshot", notes[:2]
        ),
        Case("screen_plot.png", screenshot_line_art(1920, 1080, plot), "screenshot", plot),
    ]
    return cases


def multipart_size(client: Mathpix, image: object, prepare: object) -> int:
    """Bytes of the request body the client would send (built, not sent)."""
    from mathpix_nb._protocol import Compute

    flow = client._core.text(image, prepare=prepare)
    step = next(flow)
    while isinstance(step, Compute):
        step = flow.send(step.func())
    assert isinstance(step, httpx.Request)
    return len(step.read())


def base64_json_size(data: bytes, content_type: str) -> int:
    uri = f"data:{content_type};base64," + base64.b64encode(data).decode()
    return len(json.dumps({"src": uri}).encode())


def best_of(n: int, fn: Callable[[], T]) -> tuple[float, T]:
    best, value = float("inf"), fn()
    for _ in range(n):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def fmt_kb(n: float) -> str:
    return f"{n / 1000:,.0f} KB" if n >= 10_000 else f"{n / 1000:,.1f} KB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ocr", action="store_true", help="skip the offline OCR comparison")
    args = parser.parse_args(argv)

    print("making bench images ...", flush=True)
    cases = make_cases()
    client = Mathpix("bench", "bench-key", base_url="http://127.0.0.1:9")  # nothing is sent
    rows = []
    totals = dict(orig=0, ours=0, asis=0, b64=0, prep=0.0)
    for case in cases:
        content_type = "image/jpeg" if case.name.endswith(".jpg") else "image/png"
        prep_s, prepared = best_of(3, partial(prepare_image, case.data))
        ours = multipart_size(client, prepared, None)
        asis = multipart_size(client, case.data, False)
        b64 = base64_json_size(case.data, content_type)
        with Image.open(io.BytesIO(case.data)) as im:
            size = f"{im.width}x{im.height}"
        rows.append(
            (
                case.name,
                size,
                len(case.data),
                ours,
                asis,
                b64,
                prep_s,
                f"{prepared.width}x{prepared.height} {prepared.content_type.split('/')[1]}",
            )
        )
        totals["orig"] += len(case.data)
        totals["ours"] += ours
        totals["asis"] += asis
        totals["b64"] += b64
        totals["prep"] += prep_s

    header = (
        f"{'image':<18} {'file size':>10} {'pixels':>10} {'ours sent':>10} {'as is':>10} "
        f"{'base64 JSON':>12} {'ours/as-is':>10} {'prep ms':>8}  sent as"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, size, orig, ours, asis, b64, prep_s, sent in rows:
        print(
            f"{name:<18} {fmt_kb(orig):>10} {size:>10} {fmt_kb(ours):>10} {fmt_kb(asis):>10} "
            f"{fmt_kb(b64):>12} {ours / asis:>10.3f} {prep_s * 1000:>8.0f}  {sent}"
        )
    print("-" * len(header))
    print(
        f"{'total':<18} {fmt_kb(totals['orig']):>10} {'':>10} {fmt_kb(totals['ours']):>10} "
        f"{fmt_kb(totals['asis']):>10} {fmt_kb(totals['b64']):>12} "
        f"{totals['ours'] / totals['asis']:>10.3f} {totals['prep'] * 1000:>8.0f}"
    )
    print(
        f"\nours sends {totals['asis'] / totals['ours']:.1f}x fewer bytes than the files as is "
        f"and {totals['b64'] / totals['ours']:.1f}x fewer than base64 JSON; "
        f"client prep time {totals['prep'] * 1000 / len(cases):.0f} ms per image on average."
    )

    if args.no_ocr:
        return 0
    try:
        from mathpix_nb.server import LocalServer
    except ImportError:
        print("\n(OCR comparison skipped: pip install 'mathpix_nb[offline]')")
        return 0
    print(
        "\nOCR with the offline engine (LocalServer, rapidocr): full-resolution upright "
        "image vs our prepared upload",
        flush=True,
    )
    head = (
        f"{'image':<18} {'words full':>10} {'words ours':>10} {'expected found':>15}  "
        f"unchanged  {'as-is upload found':>18}"
    )
    print(head)
    print("-" * len(head))
    unchanged_all = True
    with (
        LocalServer(engine="offline") as server,
        Mathpix(server.app_id, server.app_key, base_url=server.url, timeout=300) as ocr,
    ):
        for case in cases:
            full = prepare_image(case.data, prep=REFERENCE)  # upright, not downscaled
            text_full = ocr.text(full).text
            text_ours = ocr.text(case.data).text
            w_full, w_ours = words(text_full), words(text_ours)
            expected = [w for line in case.words for w in words(line)]
            found = sum(1 for w in expected if w in set(w_ours))
            same = w_full == w_ours
            unchanged_all &= same
            as_is = "-"
            if case.kind == "photo":
                # the file as is: the API ignores EXIF, so a sideways photo stays sideways
                w_asis = set(words(ocr.text(case.data, prepare=False).text))
                as_is = f"{sum(1 for w in expected if w in w_asis)}/{len(expected)}"
            print(
                f"{case.name:<18} {len(w_full):>10} {len(w_ours):>10} "
                f"{found:>7}/{len(expected):<7}  {'yes' if same else 'NO':<9}  {as_is:>18}"
            )
            if not same:
                print(f"   full: {' '.join(w_full)}\n   ours: {' '.join(w_ours)}")
    print(
        f"\nOCR text unchanged by our preparation on all bench images: "
        f"{'yes' if unchanged_all else 'no'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
