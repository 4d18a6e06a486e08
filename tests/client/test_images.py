"""Image input normalisation and preparation (pure: no server needed)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, features

from mathpix_nb import ImageError, ImagePrep, PreparedImage, prepare_image
from mathpix_nb._images import raw_image

from .conftest import png_bytes, text_image


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def decode(prepared: PreparedImage) -> Image.Image:
    im = Image.open(io.BytesIO(prepared.data))
    im.load()
    return im


def marker_image(width: int = 400, height: int = 200) -> Image.Image:
    """White with a black square in the top-left corner (to see where 'up' went)."""
    im = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(im).rectangle((0, 0, 39, 39), fill="black")
    return im


def test_small_acceptable_file_is_sent_byte_for_byte(tmp_path: Path) -> None:
    data = png_bytes(text_image())
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for given in (data, path, str(path), io.BytesIO(data)):
        prepared = prepare_image(given)
        assert prepared.data == data
        assert prepared.sha256 == hashlib.sha256(data).hexdigest()
        assert prepared.content_type == "image/png" and prepared.unchanged


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP", "TIFF"])
def test_other_api_formats_pass_through(fmt: str) -> None:
    data = encode(text_image(), fmt)
    assert prepare_image(data).data == data


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    data = encode(marker_image(400, 200), "JPEG", exif=exif.tobytes(), quality=95)
    prepared = prepare_image(data)
    assert not prepared.unchanged
    im = decode(prepared).convert("L")
    assert im.size == (200, 400)
    # the marker moved from raw top-left to upright top-right
    assert im.getpixel((190, 10)) < 80 and im.getpixel((10, 10)) > 200


def test_exif_can_be_ignored() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(marker_image(400, 200), "JPEG", exif=exif.tobytes())
    assert prepare_image(data, prep=ImagePrep(exif=False)).data == data


def test_crop_is_in_upright_pixels() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(marker_image(400, 200), "JPEG", exif=exif.tobytes(), quality=95)
    # upright image is 200x400 with the marker at top-right: crop that corner
    im = decode(prepare_image(data, crop=(160, 0, 40, 40))).convert("L")
    assert im.size == (40, 40)
    assert np.asarray(im).max() < 100  # all marker


def test_crop_outside_the_image_names_the_input() -> None:
    with pytest.raises(ImageError, match="outside the upright image"):
        prepare_image(text_image(100, 100), crop=(200, 200, 10, 10))


def test_big_photo_is_downscaled_to_the_byte_target() -> None:
    rng = np.random.default_rng(1)
    tile = rng.normal(200, 12, (252, 252, 3)).clip(0, 255).astype(np.uint8)
    noise = np.tile(tile, (12, 16, 1))  # 3024 x 4032, camera-like grain, built fast
    im = Image.fromarray(noise)
    ImageDraw.Draw(im).text((100, 100), "Some text " * 20, fill=(0, 0, 0))
    data = encode(im, "JPEG", quality=92)
    prepared = prepare_image(data)
    assert prepared.content_type == "image/jpeg"
    assert len(prepared.data) <= 100_000 < len(data)
    assert max(prepared.width, prepared.height) >= ImagePrep().min_side
    assert prepared.original_bytes == len(data)


def test_line_art_prefers_png_when_smaller() -> None:
    im = Image.new("RGB", (2600, 1400), "white")
    draw = ImageDraw.Draw(im)
    for i in range(30):
        draw.text((20, 20 + i * 45), f"line {i}: E = mc^2 and more words", fill="black")
    prepared = prepare_image(encode(im, "PNG"))
    assert prepared.content_type == "image/png"
    assert max(prepared.width, prepared.height) <= ImagePrep().max_side


def test_min_side_floor_keeps_text_readable() -> None:
    rng = np.random.default_rng(2)
    im = Image.fromarray(rng.integers(0, 255, (2000, 2000, 3), dtype=np.uint8))
    prepared = prepare_image(im, prep=ImagePrep(target_bytes=10_000, min_side=900))
    assert max(prepared.width, prepared.height) == 900  # target missed rather than unreadable


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("GIF", lambda: encode(text_image().convert("P"), "GIF")),
        ("CMYK JPEG", lambda: encode(text_image().convert("CMYK"), "JPEG")),
        (
            "16-bit PNG",
            lambda: encode(
                Image.fromarray((np.arange(200 * 100).reshape(100, 200) * 3).astype(np.uint16)),
                "PNG",
            ),
        ),
        (
            "palette PNG with transparency",
            lambda: encode(text_image().convert("P"), "PNG", transparency=0),
        ),
        ("transparent PNG", lambda: encode(transparent_text(), "PNG")),
        ("ICO", lambda: encode(text_image(64, 64), "ICO")),
    ],
)
def test_formats_and_modes_the_api_does_not_take_are_converted(label, make) -> None:
    data = make()
    prepared = prepare_image(data)
    assert prepared.data != data, label
    im = decode(prepared)
    assert im.format in ("JPEG", "PNG") and im.mode in ("L", "RGB"), label


def transparent_text() -> Image.Image:
    im = Image.new("RGBA", (320, 80), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((10, 30), "x^2", fill=(0, 0, 0, 255))
    return im


def test_transparency_becomes_white_not_black() -> None:
    """OpenCV drops alpha: black text on a transparent (0,0,0,0) background would vanish."""
    im = decode(prepare_image(encode(transparent_text(), "PNG"))).convert("L")
    assert im.getpixel((0, 0)) == 255 and np.asarray(im).min() < 100


def test_opaque_rgba_passes_through() -> None:
    data = encode(text_image().convert("RGBA"), "PNG")
    assert prepare_image(data).data == data


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_are_converted(fmt: str) -> None:
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    elif not features.check("avif"):
        pytest.skip("this Pillow cannot read AVIF")
    data = encode(text_image(), fmt)
    prepared = prepare_image(data)
    assert prepared.content_type in ("image/png", "image/jpeg")
    assert decode(prepared).size == (320, 80)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [text_image(label="first"), text_image(label="second")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode(prepare_image(buf.getvalue())).size == (320, 80)


@pytest.mark.parametrize(
    ("array", "size"),
    [
        (np.full((30, 40), 200, dtype=np.uint8), (40, 30)),
        (np.zeros((30, 40, 3), dtype=np.uint8), (40, 30)),
        (np.zeros((30, 40, 4), dtype=np.uint8), (40, 30)),
        (np.random.default_rng(0).random((30, 40)), (40, 30)),
        (np.zeros((30, 40), dtype=bool), (40, 30)),
        (np.full((30, 40), 60000, dtype=np.uint16), (40, 30)),
        (np.zeros((30, 40, 1), dtype=np.uint8), (40, 30)),
    ],
    ids=["gray", "rgb", "rgba", "float", "bool", "uint16", "hw1"],
)
def test_numpy_arrays(array: np.ndarray, size: tuple[int, int]) -> None:
    assert decode(prepare_image(array)).size == size


def test_numpy_array_of_wrong_shape() -> None:
    with pytest.raises(ImageError, match="expected shape"):
        prepare_image(np.zeros((3, 4, 5, 6)))


def test_decompression_bomb_guard() -> None:
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageError, match="decompression bombs") as info:
        prepare_image(data, prep=ImagePrep(max_pixels=1_000_000))
    assert "max_pixels" in str(info.value)


@pytest.mark.parametrize(
    ("data", "fix"),
    [
        (b"%PDF-1.7\n...", "client.pdf"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "pillow-heif|re-export it as JPEG"),
        (b"hello, not an image", "convert it to PNG or JPEG"),
        (b"", "empty"),
    ],
    ids=["pdf", "heic", "text", "empty"],
)
def test_unreadable_inputs_say_what_to_do(data: bytes, fix: str) -> None:
    with pytest.raises(ImageError, match=fix):
        prepare_image(data)


def test_missing_file_and_directory_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.png"):
        prepare_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="directory"):
        prepare_image(tmp_path)


def test_text_mode_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hi")
    with path.open() as handle, pytest.raises(ImageError, match="'rb'"):
        prepare_image(handle)


def test_unsupported_object() -> None:
    with pytest.raises(ImageError, match="Unsupported image input"):
        prepare_image(12345)


def test_image_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        prepare_image(b"")


def test_prepare_false_sends_files_as_they_are() -> None:
    data = encode(text_image(3000, 2000), "PNG")
    raw = raw_image(data)
    assert raw.data == data and raw.content_type == "image/png"
    cropped = decode(raw_image(data, crop=(0, 0, 100, 50)))
    assert cropped.size == (100, 50) and cropped.format == "PNG"


def test_prepared_image_repr_has_no_bytes() -> None:
    prepared = prepare_image(text_image())
    assert "bytes" in repr(prepared) and "\\x" not in repr(prepared)


def test_pil_image_opened_from_a_photo_is_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to view
    data = encode(marker_image(400, 200), "JPEG", exif=exif.tobytes(), quality=95)
    im = decode(prepare_image(Image.open(io.BytesIO(data)))).convert("L")
    assert im.size == (200, 400)
    assert im.getpixel((10, 390)) < 80  # raw top-left -> upright bottom-left


def test_float_mode_image_in_unit_range_is_not_black() -> None:
    im = Image.fromarray(np.full((20, 30), 0.9, dtype=np.float32), mode="F")
    out = decode(prepare_image(im)).convert("L")
    assert out.getpixel((0, 0)) > 200
