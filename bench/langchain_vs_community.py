"""Side by side: mathpix_nb's MathpixLoader vs langchain-community's MathpixPDFLoader.

Both load the same PDF from one LocalServer (real loopback HTTP, measured in one run):
time to the first Document, wall time, requests made (from the server's log) and the
metadata each Document keeps. The server takes ``--page-latency`` seconds per page (and
``--step-delay`` per processing step), so a streamed page mode hands out page 1 long before
the PDF is done; loaders that wait for the whole PDF give their first Document at the end.
MathpixPDFLoader hard-codes https://api.mathpix.com/v3/pdf in its ``url`` property, so a
subclass overrides that property to point at the local server; it reads its credentials
from MATHPIX_API_ID / MATHPIX_API_KEY.

Usage: python bench/langchain_vs_community.py [--pages N] [--engine echo|offline]
       [--page-latency S] [--step-delay S]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _results import column, machine, table, write
from PIL import Image, ImageDraw, ImageFont

from mathpix_nb.langchain import MathpixLoader
from mathpix_nb.server import LocalServer


def make_pdf(path: Path, pages: int) -> Path:
    font = ImageFont.load_default(size=36)
    images = []
    for i in range(pages):
        img = Image.new("RGB", (1000, 700), "white")
        draw = ImageDraw.Draw(img)
        draw.text((30, 30), f"Page {i + 1}: the area of a circle", fill="black", font=font)
        draw.text((30, 90), f"is pi r squared, r = {i + 2}", fill="black", font=font)
        images.append(img)
    images[0].save(path, "PDF", save_all=True, append_images=images[1:])
    return path


def summarise(records: list[Any]) -> str:
    counts = collections.Counter(f"{r.method} {_shape(r.path)}" for r in records)
    return ", ".join(f"{n}x {k}" for k, n in sorted(counts.items()))


def _shape(endpoint: str) -> str:
    # /v3/pdf/<id>.mmd -> /v3/pdf/{id}.mmd : group by endpoint shape, not by id
    parts = endpoint.split("/")
    if len(parts) > 3 and parts[2] == "pdf":
        tail = parts[3]
        ext = tail.split(".", 1)[1] if "." in tail else ""
        parts[3] = "{id}" + (f".{ext}" if ext else "")
    return "/".join(parts)


def run(label: str, fn: Any, server: Any) -> dict[str, Any]:
    """Time ``fn()`` (an iterable of Documents): to its first Document and to its end."""
    start = len(server.log)
    t0 = time.perf_counter()
    first = None
    docs: list[Any] = []
    try:
        for doc in fn():
            if first is None:
                first = time.perf_counter() - t0
            docs.append(doc)
        error = None
    except Exception as exc:  # the bench reports failures instead of stopping
        error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    records = list(server.log[start:])
    keys = sorted({k for d in docs for k in d.metadata})
    return {
        "label": label,
        "first": first if first is not None else wall,
        "wall": wall,
        "records": records,
        "docs": docs,
        "keys": keys,
        "error": error,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--engine", default="echo", choices=["echo", "offline"])
    parser.add_argument("--page-latency", type=float, default=0.0, help="server s per page")
    parser.add_argument("--step-delay", type=float, default=0.05, help="server pdf_step_delay")
    args = parser.parse_args()
    measured_on = machine()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from langchain_community.document_loaders.pdf import MathpixPDFLoader

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalServer(
            engine=args.engine, latency_base=args.page_latency, pdf_step_delay=args.step_delay
        ) as server,
    ):
        os.environ["MATHPIX_NB_HOME"] = tmp  # a fresh cache for this run
        pdf = make_pdf(Path(tmp) / "bench.pdf", args.pages)

        class LocalMathpixPDFLoader(MathpixPDFLoader):
            @property
            def url(self) -> str:
                return f"{server.url}/v3/pdf"

        os.environ["MATHPIX_API_ID"] = server.app_id
        os.environ["MATHPIX_API_KEY"] = server.app_key
        creds = {
            "app_id": server.app_id,
            "app_key": server.app_key,
            "region_urls": {"global": server.url},
        }

        # Warm-up, not measured: the offline engine loads its OCR model on first use.
        MathpixLoader(pdf, cache=False, **creds).load()

        results = [
            run(
                "community MathpixPDFLoader (md)",
                lambda: LocalMathpixPDFLoader(str(pdf)).load(),
                server,
            ),
            run(
                "community MathpixPDFLoader (mmd)",
                lambda: LocalMathpixPDFLoader(str(pdf), processed_file_format="mmd").load(),
                server,
            ),
            run(
                "mathpix_nb MathpixLoader single",
                lambda: MathpixLoader(pdf, cache=False, **creds).lazy_load(),
                server,
            ),
            run(
                "mathpix_nb MathpixLoader page, stream=False (whole PDF first)",
                lambda: MathpixLoader(
                    pdf, mode="page", stream=False, cache=False, **creds
                ).lazy_load(),
                server,
            ),
            run(
                "mathpix_nb MathpixLoader page (streamed)",
                lambda: MathpixLoader(pdf, mode="page", **creds).lazy_load(),
                server,
            ),
            run(
                "mathpix_nb MathpixLoader page, again (cached)",
                lambda: MathpixLoader(pdf, mode="page", **creds).lazy_load(),
                server,
            ),
        ]

    print(
        f"PDF: {args.pages} pages, engine={args.engine}, page latency {args.page_latency} s, "
        f"pdf_step_delay {args.step_delay} s, LocalServer over loopback HTTP\n"
    )
    base = results[0]["wall"]
    for r in results:
        ratio = f"{r['wall'] / base:6.3f}x community(md)" if base > 0 else ""
        print(f"== {r['label']}")
        print(f"   first doc : {r['first']:.3f} s")
        print(f"   wall time : {r['wall']:.3f} s  ({ratio})")
        print(f"   requests  : {len(r['records'])}  [{summarise(r['records'])}]")
        if r["error"]:
            print(f"   ERROR     : {r['error']}")
        print(
            f"   documents : {len(r['docs'])}  (chars: {[len(d.page_content) for d in r['docs']]})"
        )
        print(f"   metadata  : {r['keys']}")
        if r["docs"]:
            sample = {k: v for k, v in r["docs"][0].metadata.items()}
            print(f"   sample    : {sample}")
        print()
    write(
        "langchain_vs_community",
        args=args,
        setup=(
            f"a {args.pages}-page PDF, engine {args.engine}, {args.page_latency} s per page, "
            f"pdf_step_delay {args.step_delay} s, one LocalServer over loopback HTTP"
        ),
        tables=[
            table(
                "Time to the first Document",
                [
                    column("label", "loader"),
                    column("first", "first Document s", ".3f"),
                    column("wall", "wall s", ".3f"),
                    column("x_community", "× community (md)", ".3f"),
                    column("requests", "requests", "d"),
                    column("documents", "Documents", "d"),
                    column("error", "error"),
                ],
                [
                    {
                        "label": r["label"],
                        "first": r["first"],
                        "wall": r["wall"],
                        "x_community": r["wall"] / base if base > 0 else None,
                        "requests": len(r["records"]),
                        "documents": len(r["docs"]),
                        "error": r["error"],
                    }
                    for r in results
                ],
            )
        ],
        data=[
            {"label": r["label"], "metadata_keys": r["keys"], "requests": summarise(r["records"])}
            for r in results
        ],
        machine_info=measured_on,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
