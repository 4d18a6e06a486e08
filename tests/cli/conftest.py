"""The ``mathpix-nb`` command run as a user runs it: a subprocess against the local server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mathpix_nb.server import LocalServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    raw: bytes


@pytest.fixture(scope="module")
def cli_server() -> Iterator[LocalServer]:
    with LocalServer(engine="echo", pdf_step_delay=0.02) as server:
        yield server


@pytest.fixture
def cli_env(cli_server: LocalServer, tmp_path: Path) -> dict[str, str]:
    """The process environment: credentials of the local server, a private MATHPIX_NB_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATHPIX_")}
    env.update(
        MATHPIX_APP_ID=cli_server.app_id,
        MATHPIX_APP_KEY=cli_server.app_key,
        MATHPIX_URL=cli_server.url,
        MATHPIX_NB_HOME=str(tmp_path / "home"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


@pytest.fixture
def mathpix_nb(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., Run]:
    """Run ``mathpix-nb ARGS...`` (``python -m mathpix_nb``), bounded in time."""

    def run(
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        prelude: str = "",
        timeout: float = 90,
    ) -> Run:
        if prelude:  # e.g. hide an installed package: the user who lacks an extra
            cmd = [
                sys.executable,
                "-c",
                f"import sys\n{prelude}\nfrom mathpix_nb.cli import main\n"
                "sys.exit(main(sys.argv[1:]))",
                *args,
            ]
        else:
            cmd = [sys.executable, "-m", "mathpix_nb", *args]
        proc = subprocess.run(
            cmd,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env=env if env is not None else cli_env,
            cwd=tmp_path,
            timeout=timeout,
        )
        return Run(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            proc.stdout,
        )

    return run


def echo_text(data: bytes, size: tuple[int, int]) -> str:
    """What the echo engine answers for an image of these bytes (sent byte for byte)."""
    return f"echo {size[0]}x{size[1]} sha:{hashlib.sha256(data).hexdigest()[:12]}"


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """A small PNG with content (the echo engine answers image_no_content for blank ones)."""

    def make(name: str = "page.png", size: tuple[int, int] = (120, 60), seed: int = 0) -> Path:
        image = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((10 + seed % 40, 10, 60 + seed % 40, 40), fill=(seed * 37 % 255, 0, 0))
        path = tmp_path / name
        image.save(path)
        return path

    return make


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    def make(pages: int = 3, name: str = "doc.pdf") -> Path:
        images = [Image.new("RGB", (200, 100), (i * 40, 0, 0)) for i in range(pages)]
        path = tmp_path / name
        images[0].save(path, "PDF", save_all=True, append_images=images[1:])
        return path

    return make
