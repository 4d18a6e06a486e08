"""The README's main job: ``mathpix-nb demo`` without credentials runs offline and says so."""

from __future__ import annotations

import pytest

from mathpix_nb import demo


def test_samples_are_shipped() -> None:
    names = {p.name for p in demo.sample_images()}
    assert {"text_lines.png", "notes.png", "phone_photo.jpg"} <= names


@pytest.mark.slow
def test_demo_runs_offline_and_reads_the_samples(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rapidocr")
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "OFFLINE" in out and "no math recognition" in out
    # the phone photo is stored sideways: it reads only because the client turned it upright
    assert "Homework 2" in out
    assert "Lecture notes" in out and "quadratic formula" in out
    assert out.count("confidence") >= 3


def test_demo_uses_the_api_when_credentials_are_set(
    server: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With MATHPIX_APP_ID/KEY (here pointed at the local echo server) no offline notice."""
    monkeypatch.setenv("MATHPIX_APP_ID", server.app_id)  # type: ignore[attr-defined]
    monkeypatch.setenv("MATHPIX_APP_KEY", server.app_key)  # type: ignore[attr-defined]
    monkeypatch.setenv("MATHPIX_URL", server.url)  # type: ignore[attr-defined]
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "Using the Mathpix API at http://127.0.0.1" in out and "OFFLINE" not in out
    assert out.count("| echo ") == len(demo.sample_images())
    # the photo is stored sideways (portrait pixels + EXIF); it must arrive upright (landscape)
    photo_line = out.split("phone_photo.jpg")[1].splitlines()[2]
    width, height = (int(v) for v in photo_line.split()[2].split("x"))
    assert width > height
