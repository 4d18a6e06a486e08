"""Legibility bench: does our upload preparation cost OCR accuracy?

Makes its own pages: A4 at 300 dpi (2480x3508) with 8, 9 and 10 pt text, subscripts and
formulas (rendered with the DejaVu fonts, or Pillow's default font when DejaVu is missing), in
three kinds:

* ``render``: a clean rendered page (PNG, like a PDF export);
* ``scan``: the page as a 300-dpi scanner delivers it (grayish paper, noise, slight blur and
  skew; RGB PNG);
* ``photo``: a 12 MP phone photo of the page (perspective, rotation, uneven light, sensor noise,
  stored sideways with EXIF orientation 6, JPEG).

Each page is read by the local server's offline engine (rapidocr) with its own downscaling
turned off (``Global.max_side_len`` raised from 2000 px, so the engine sees what it is sent)
twice: the original (upright, full resolution, lossless) and our prepared upload. Reported per
page: character error rate (CER, Levenshtein distance / reference length, against the text that
was drawn) for both, the difference in points (target: within 0.5), upload bytes and size,
and a control: the CER of the page sent at 1000 px (the old preparation's 707x1000, about
85 dpi), which shows the bench can tell a legible upload from an illegible one.

Run: ``python bench/legibility.py`` (``--pages N`` pages per kind, default 2; ``--kinds``).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from mathpix_nb import ImagePrep, PreparedImage, prepare_image

A4 = (2480, 3508)  # 300 dpi
DPI = 300
FONTS = Path("/usr/share/fonts/truetype/dejavu")
_PROSE = (
    "the of and to in is that for it as was with be by on not this are or from at which but "
    "have an they you were her she there one all we can their has been if more when will would "
    "who so no measure value theorem proof equation integral series function matrix vector "
    "limit sequence number point line angle area volume rate change energy mass force field "
    "given therefore hence assume suppose consider define let show prove find compute"
)
WORDS = _PROSE.split()
FORMULAS = [
    "E = mc^2",
    "a^2 + b^2 = c^2",
    "f(x) = 3x^2 - 2x + 7",
    "x = (-b + sqrt(b^2 - 4ac)) / 2a",
    "sum of a_k for k = 1 to n",
    "lim x->0 sin(x)/x = 1",
    "F = G m_1 m_2 / r^2",
    "v_0 + a t = v_1",
    "P(A|B) = P(B|A) P(A) / P(B)",
    "det(A - t I) = 0",
]


def font(size: int, kind: str = "Serif") -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONTS / f"DejaVu{kind}.ttf"
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def pt(points: float) -> int:
    return round(points / 72 * DPI)


@dataclass
class Page:
    name: str
    kind: str
    data: bytes  # the file as a user has it
    upright: Image.Image  # the original for OCR: upright, full resolution
    truth: str


def draw_run(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, size: int) -> int:
    """Draw ``text`` with ``_k`` as subscripts and ``^k`` as superscripts; returns the new x."""
    base = font(size)
    small = font(int(size * 0.62))
    for part in re.split(r"([_^][A-Za-z0-9]+)", text):
        if not part:
            continue
        if part[0] in "_^":
            dy = int(size * 0.45) if part[0] == "_" else -int(size * 0.15)
            draw.text((x, y + dy), part[1:], font=small, fill=0)
            x += int(draw.textlength(part[1:], font=small))
        else:
            draw.text((x, y), part, font=base, fill=0)
            x += int(draw.textlength(part, font=base))
    return x


def truth_of(text: str) -> str:
    return re.sub(r"[_^]", "", text)


def render_page(seed: int) -> tuple[Image.Image, str]:
    """A 300-dpi A4 page of 8-10 pt prose and formula lines; returns (page, its text)."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(page)
    margin = 236  # 2 cm
    y = margin
    lines: list[str] = []
    sizes = [pt(8), pt(9), pt(10)]
    block = 0
    while True:
        size = sizes[block % 3]
        leading = int(size * 1.35)
        if y + leading * 6 > A4[1] - margin:
            break
        for _ in range(5):
            line: list[str] = []
            while True:
                word = str(rng.choice(WORDS))
                if draw.textlength(" ".join([*line, word]), font=font(size)) > A4[0] - 2 * margin:
                    break
                line.append(word)
            text = " ".join(line)
            draw_run(draw, margin, y, text, size)
            lines.append(text)
            y += leading
        formula = FORMULAS[(seed * 3 + block) % len(FORMULAS)]
        draw_run(draw, margin + 300, y + leading // 4, formula, size)
        lines.append(truth_of(formula))
        y += int(leading * 1.8)
        block += 1
    return page, "\n".join(lines)


def as_png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def scan_of(page: Image.Image, seed: int) -> Image.Image:
    """What a 300-dpi flatbed scanner delivers: grayish paper, noise, a little blur and skew."""
    rng = np.random.default_rng(seed)
    tilted = page.rotate(0.35, resample=Image.Resampling.BICUBIC, fillcolor=255)
    blurred = np.asarray(tilted.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32)
    paper = 232 + 8 * rng.random((A4[1] // 8 + 1, A4[0] // 8 + 1))
    paper = np.kron(paper, np.ones((8, 8)))[: A4[1], : A4[0]]
    gray = blurred / 255 * paper + rng.normal(0, 5, blurred.shape)
    tint = np.stack([gray * 1.0, gray * 0.99, gray * 0.96], axis=-1)
    return Image.fromarray(tint.clip(0, 255).astype(np.uint8))


def photo_of(page: Image.Image, seed: int) -> tuple[bytes, Image.Image]:
    """A 12 MP phone photo of the page (4032x3024 stored sideways, EXIF orientation 6)."""
    rng = np.random.default_rng(seed)
    width, height = 3024, 4032  # upright portrait
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    desk = 95 + 25 * np.sin(xx / 300 + seed) + 15 * np.cos(yy / 200)
    scene = Image.fromarray(
        np.stack([desk * 0.9, desk * 0.75, desk * 0.55], axis=-1).clip(0, 255).astype(np.uint8)
    )
    # the page, slightly in perspective: corners of the page in the photo
    scale = 3500 / A4[1]
    pw, ph = A4[0] * scale, A4[1] * scale
    left, top = (width - pw) / 2, (height - ph) / 2
    quad = [
        (left + 40, top + 10),
        (left + pw - 30, top + 45),
        (left + pw + 10, top + ph - 20),
        (left - 15, top + ph + 5),
    ]
    coeffs = _perspective(quad, A4)
    rgb_page = page.convert("RGB")
    warped = rgb_page.transform(
        (width, height), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC
    )
    mask = Image.new("L", A4, 255).transform(
        (width, height), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    scene.paste(warped, (0, 0), mask)
    light = 0.82 + 0.18 * (xx / width) * (1 - 0.3 * yy / height)
    arr = np.asarray(scene, dtype=np.float32) * light[..., None] * np.array([1.0, 0.97, 0.9])
    arr += rng.normal(0, 4, arr.shape)
    photo = Image.fromarray(arr.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    raw = photo.transpose(Image.Transpose.ROTATE_90)  # how the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    raw.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    data = buf.getvalue()
    return data, ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


def _perspective(quad: list[tuple[float, float]], size: tuple[int, int]) -> list[float]:
    """Coefficients mapping output pixels (the photo) to input pixels (the page)."""
    w, h = size
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(quad, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows), np.array(rhs))]


def make_pages(count: int, kinds: list[str]) -> list[Page]:
    pages: list[Page] = []
    for i in range(count):
        page, truth = render_page(i + 1)
        if "render" in kinds:
            pages.append(Page(f"render{i + 1}.png", "render", as_png(page), page, truth))
        if "scan" in kinds:
            scan = scan_of(page, i + 1)
            pages.append(Page(f"scan{i + 1}.png", "scan", as_png(scan), scan, truth))
        if "photo" in kinds:
            data, upright = photo_of(page, i + 1)
            pages.append(Page(f"photo{i + 1}.jpg", "photo", data, upright, truth))
    return pages


# -- scoring -----------------------------------------------------------------------------
def normalise(text: str) -> str:
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one numpy row per character of ``a``."""
    if not a or not b:
        return max(len(a), len(b))
    aa = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, char in enumerate(aa, start=1):
        new = np.empty_like(row)
        new[0] = i
        new[1:] = np.minimum(row[:-1] + (bb != char), row[1:] + 1)  # substitute, delete
        row = np.minimum.accumulate(new - steps) + steps  # insert: min_k<=j new[k] + j - k
    return int(row[-1])


def cer(text: str, truth: str) -> float:
    ref = normalise(truth)
    return 100.0 * levenshtein(normalise(text), ref) / max(1, len(ref))


def ocr(engine: Any, data: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    result = engine.recognize(data, {})
    text = "\n".join(line["text"] for line in result["lines"])
    return text, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2, help="pages per kind (default 2)")
    parser.add_argument(
        "--kinds", default="render,scan,photo", help="comma-separated: render,scan,photo"
    )
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the 1000 px control (the old preparation's size)",
    )
    args = parser.parse_args(argv)
    from _results import column, machine, table, target, write

    measured_on = machine()
    try:
        from mathpix_nb.server._engines import OfflineEngine
    except ImportError:
        print("needs the offline engine: pip install 'mathpix_nb[offline]'")
        return 1
    # the engine's own downscaling off: it reads exactly the pixels it is sent
    engine = OfflineEngine(params={"Global.max_side_len": 100_000})
    print("making pages ...", flush=True)
    pages = make_pages(args.pages, args.kinds.split(","))
    prep = ImagePrep()
    # the control: what the old preparation sent (an A4 page at 707x1000, about 85 dpi). If
    # its CER is no worse, the bench cannot tell legible from illegible and proves nothing.
    control = ImagePrep(max_side=1000, min_side=1000)
    header = (
        f"{'page':<12} {'original':>11} {'sent':>11} {'sent bytes':>11} {'CER orig':>9} "
        f"{'CER sent':>9} {'diff pts':>9} {'CER 1000px':>11}  note"
    )
    print()
    print(header)
    print("-" * len(header))
    diffs: dict[str, list[float]] = {}
    controls: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    for page in pages:
        prepared: PreparedImage = prepare_image(page.data, prep=prep)
        text_orig, _ = ocr(engine, as_png(page.upright))
        text_sent, _ = ocr(engine, prepared.data)
        c_orig, c_sent = cer(text_orig, page.truth), cer(text_sent, page.truth)
        diffs.setdefault(page.kind, []).append(c_sent - c_orig)
        c_control = float("nan")
        if args.control:
            small = prepare_image(page.data, prep=control)
            c_control = cer(ocr(engine, small.data)[0], page.truth)
            controls.setdefault(page.kind, []).append(c_control - c_orig)
        note = "over target (said so)" if prepared.over_target_reason else ""
        rows.append(
            {
                "page": page.name,
                "original": "x".join(map(str, page.upright.size)),
                "sent": f"{prepared.width}x{prepared.height}",
                "bytes": len(prepared.data),
                "cer_orig": c_orig,
                "cer_sent": c_sent,
                "diff": c_sent - c_orig,
                "cer_control": c_control if args.control else None,
                "note": note,
            }
        )
        print(
            f"{page.name:<12} {'x'.join(map(str, page.upright.size)):>11} "
            f"{prepared.width}x{prepared.height:<6} {len(prepared.data):>11,} {c_orig:>8.2f}% "
            f"{c_sent:>8.2f}% {c_sent - c_orig:>+9.2f} {c_control:>10.2f}%  {note}",
            flush=True,
        )
    print("-" * len(header))
    worst = max(abs(d) for values in diffs.values() for d in values)
    notes = []
    for kind, values in diffs.items():
        line = f"{kind:<8} mean CER difference {sum(values) / len(values):+.2f} points"
        if kind in controls:
            drop = controls[kind]
            line += f" (the 1000 px control: {sum(drop) / len(drop):+.2f})"
        print(line)
        notes.append(" ".join(line.split()))
    print(f"worst page: {worst:.2f} points (target: within 0.5)")
    write(
        "legibility",
        args=args,
        setup=(
            f"{args.pages} A4 300-dpi page(s) per kind ({args.kinds}), 8-10 pt text; offline "
            "engine (rapidocr) with its own downscaling off; CER against the drawn text"
        ),
        tables=[
            table(
                "Character error rate: original vs prepared upload (and a 1000 px control)",
                [
                    column("page", "page"),
                    column("original", "original"),
                    column("sent", "sent"),
                    column("bytes", "sent bytes", ",d"),
                    column("cer_orig", "CER orig %", ".2f"),
                    column("cer_sent", "CER sent %", ".2f"),
                    column("diff", "diff pts", "+.2f"),
                    column("cer_control", "CER 1000 px %", ".2f"),
                    column("note", "note"),
                ],
                rows,
            )
        ],
        targets=[target(f"worst page: {worst:.2f} points (within 0.5)", worst <= 0.5)],
        notes=notes,
        machine_info=measured_on,
    )
    return 0 if worst <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
