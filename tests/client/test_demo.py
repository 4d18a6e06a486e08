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
