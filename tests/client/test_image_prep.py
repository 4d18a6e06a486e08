"""Preparation rules a user notices: legibility floors (and saying when the byte target is
exceeded for them), the one crop rule, and how many images AsyncMathpix prepares at once."""

from __future__ import annotations

import functools
import io
import os
import threading
import time
from typing import Any

import anyio
import numpy as np
import pytest
from PIL import Image, ImageDraw

from mathpix_nb import AsyncMathpix, ImageError, ImagePrep, clip_crop, prepare_image
from mathpix_nb._images import prep_threads

from .conftest import keys


def _noisy_page(width: int, height: int, seed: int = 0) -> Image.Image:
    """A page of text-like bars on noisy gray paper (noise keeps JPEGs big, like scans)."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(page)
    for y in range(150, height - 150, 60):
        draw.rectangle((200, y, width - 200, y + 18), fill=30)
    noisy = np.asarray(page, dtype=np.float32) + rng.normal(0, 6, (height, width))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


@functools.cache
def _a4_scan_png() -> bytes:
    buf = io.BytesIO()
    _noisy_page(2480, 3508).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(im: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


def test_a4_scan_keeps_150_dpi_and_says_why_it_is_over_the_byte_target() -> None:
    prepared = prepare_image(_a4_scan_png())
    assert max(prepared.width, prepared.height) >= 1750  # about 150 dpi on A4
    assert len(prepared.data) > 100_000
    reason = prepared.over_target_reason or ""
    assert "target_bytes=100,000" in reason and "min_side=1750" in reason


def test_a_small_step_towards_the_byte_target_is_not_taken() -> None:
    """A 4000 px photo decoded at 1/2 scale (2000 px) is not resampled to 1750 px."""
    photo = _noisy_page(3000, 4000).convert("RGB")
    prepared = prepare_image(_jpeg(photo))
    assert (prepared.width, prepared.height) == (1500, 2000)
    assert "15 %" in (prepared.over_target_reason or "")


def test_within_the_target_nothing_is_said() -> None:
    im = Image.new("RGB", (1200, 800), "white")
    ImageDraw.Draw(im).text((50, 50), "x^2 + 1", fill="black")
    prepared = prepare_image(im)
    assert prepared.over_target_reason is None and len(prepared.data) <= 100_000


def test_a_lower_floor_is_honoured_when_asked() -> None:
    prepared = prepare_image(_a4_scan_png(), prep=ImagePrep(min_side=1000, max_side=1000))
    assert max(prepared.width, prepared.height) <= 1000


@pytest.mark.parametrize(
    ("crop", "box"),
    [
        ((10, 20, 30, 40), (10, 20, 30, 40)),
        ((-10, 5, 50, 500), (0, 5, 40, 75)),  # partly outside: clipped
        ((0.5, 0.5, 10.2, 10.2), (0, 0, 11, 11)),  # covers every pixel it touches
        ([90, 70, 100, 100], (90, 70, 10, 10)),
        ((np.int64(1), np.float32(2.0), 3, 4), (1, 2, 3, 4)),
    ],
)
def test_clip_crop_is_the_one_rule(crop: Any, box: tuple[int, int, int, int]) -> None:
    assert clip_crop(crop, 100, 80) == box


@pytest.mark.parametrize(
    ("crop", "message"),
    [
        ((100, 0, 10, 10), "outside the upright image"),
        ((0, 0, 0, 10), "> 0"),
        ((0, 0, float("inf"), 10), "finite"),
        ("0,0,10,10", "not a box"),
        ((1, 2, 3), "3 values"),
        ((True, 0, 10, 10), "not a number"),
    ],
)
def test_clip_crop_refuses_with_the_fix(crop: Any, message: str) -> None:
    with pytest.raises(ImageError, match=message) as info:
        clip_crop(crop, 100, 80, source="page.png")
    assert "Fix:" in str(info.value)


def test_prep_threads_is_one_per_usable_core() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert prep_threads() == cores


class _Tracked:
    """An array-like input that records how many are being read at the same time."""

    lock = threading.Lock()
    active = 0
    peak = 0

    def __init__(self) -> None:
        im = Image.new("L", (200, 60), 255)
        ImageDraw.Draw(im).rectangle((10, 10, 120, 40), fill=0)
        self._array = np.asarray(im)
        self.shape = self._array.shape
        self.dtype = self._array.dtype

    @property
    def __array_interface__(self) -> dict[str, Any]:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.1)  # a slow decode
        with cls.lock:
            cls.active -= 1
        return self._array.__array_interface__


@pytest.mark.anyio
@pytest.mark.timeout(20)
async def test_async_client_prepares_one_image_per_core_at_once(srv: Any) -> None:
    _Tracked.active = _Tracked.peak = 0
    async with AsyncMathpix(**keys(srv)) as client, anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(client.text, _Tracked())
    assert _Tracked.peak <= prep_threads()  # never more decodes in memory than cores
    if prep_threads() >= 2:
        assert _Tracked.peak >= 2  # and more than one core works
    assert len(srv.log) == 6
