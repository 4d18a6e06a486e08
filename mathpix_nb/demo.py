"""``mathpix-nb demo``: OCR the bundled sample images and print text and confidence.

With Mathpix credentials (``MATHPIX_APP_ID`` / ``MATHPIX_APP_KEY``) it calls the real API.
Without them it starts the local server with its offline engine (rapidocr: plain text only,
no math recognition) and says so, so the main job runs anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from ._client import Mathpix
from ._exceptions import MathpixError

SAMPLES = Path(__file__).parent / "samples"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def sample_images() -> list[Path]:
    """The images shipped in ``mathpix_nb/samples``."""
    return sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _has_credentials() -> bool:
    """Any credentials the client would use (keys, app token, token URL, team proxy)."""
    from ._config import resolve_settings
    from ._exceptions import ConfigurationError

    try:
        resolve_settings()
    except ConfigurationError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathpix-nb demo",
        description="OCR the bundled sample images (or your own) and print text and confidence. "
        "Uses the Mathpix API when credentials are set (MATHPIX_APP_ID + MATHPIX_APP_KEY, "
        "MATHPIX_APP_TOKEN, MATHPIX_TOKEN_URL or MATHPIX_PROXY_URL + MATHPIX_PROXY_AUTH), "
        "otherwise the local server's offline engine. Exit code 1 if any image failed.",
    )
    parser.add_argument("images", nargs="*", type=Path, help="images to OCR (default: samples)")
    parser.add_argument(
        "--offline", action="store_true", help="use the offline engine even with credentials"
    )
    parser.add_argument("--region", default=None, help="global or eu (real API only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    images = list(args.images) or sample_images()
    offline = args.offline or not _has_credentials()
    with ExitStack() as stack:
        if offline:
            try:
                from .server import LocalServer
            except ImportError as exc:
                print(
                    f"mathpix-nb demo: the local server is not installed ({exc}). Install it "
                    "with: pip install 'mathpix_nb[offline]', or set MATHPIX_APP_ID and "
                    "MATHPIX_APP_KEY to use the Mathpix API.",
                    file=sys.stderr,
                )
                return 2
            print(
                "No Mathpix credentials (MATHPIX_APP_ID / MATHPIX_APP_KEY): running OFFLINE on "
                "the local server's offline engine (rapidocr). It reads plain printed text only: "
                "no math recognition, no LaTeX.\n"
                if not args.offline
                else "Running OFFLINE on the local server's offline engine (rapidocr): plain "
                "text only, no math recognition.\n"
            )
            started = time.perf_counter()
            server = stack.enter_context(LocalServer(engine="offline"))
            print(f"local server ready at {server.url} ({time.perf_counter() - started:.1f} s)\n")
            client = stack.enter_context(
                Mathpix(server.app_id, server.app_key, base_url=server.url)
            )
        else:
            try:
                client = stack.enter_context(Mathpix(region=args.region))
            except MathpixError as exc:
                print(f"mathpix-nb demo: {exc}", file=sys.stderr)
                return 2
            print(f"Using the Mathpix API at {client.base_url} (region {client.region}).\n")

        failures = 0
        for path in images:
            print(f"== {path.name}")
            started = time.perf_counter()
            try:
                result = client.text(path)
            except MathpixError as exc:
                failures += 1
                print(f"   error: {exc}\n")
                continue
            seconds = time.perf_counter() - started
            confidence = "n/a" if result.confidence is None else f"{result.confidence:.2f}"
            print(f"   confidence {confidence}, {seconds:.2f} s")
            for line in (result.text or "(no text recognised)").splitlines():
                print(f"   | {line}")
            print()
        if offline:
            print("(offline engine: set MATHPIX_APP_ID and MATHPIX_APP_KEY for real Mathpix OCR)")
        return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
