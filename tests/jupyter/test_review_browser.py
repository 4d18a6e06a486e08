"""The Review widget in a real JupyterLab, headless Chromium (Playwright).

1. 500 rows from a real bulk run (local graded echo server, journal on disk): open, scroll,
   filter, j/k + Enter to edit a row, re-OCR another with a drawn crop; then the kernel's
   DataFrame and the journal file are checked.
2. 10,000 rows: time to first paint and browser memory (CDP ``Performance.getMetrics``),
   printed as ``REVIEW_BENCH {...}`` and bounded.

The kernel is driven through JupyterLab's own kernel connection (``requestExecute``), so the
setup runs before the one notebook cell that displays the view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ._browser import (
    ARTIFACTS,
    MARKS,
    THEME_IS,
    browser_page,
    jupyter,
    marimo,
    open_notebook,
    run_all_cells,
    write_notebook,
)
from ._browser import screenshot as keep

pytestmark = MARKS

SETUP_500 = """\
import json, pathlib
import pandas as pd
import mathpix_nb.pandas
from mathpix_nb import Mathpix
from mathpix_nb.server import LocalServer
from tests.jupyter.test_review import graded_engine, write_images

work = pathlib.Path({work!r})
server = LocalServer(engine=graded_engine()).start()
client = Mathpix(server.app_id, server.app_key, base_url=server.url)
paths = write_images(work / "img", 500, blank=(3, 7, 11))
out = pd.DataFrame({{"image_path": paths}}).mathpix.ocr(
    "image_path", client=client, journal=str(work / "journal.sqlite3"),
    poll_interval=0.05, progress=False)
posts = lambda: len([r for r in server.log if r.endpoint == "/v3/text"])
review = out.mathpix.review(client=client, journal=str(work / "journal.sqlite3"))
print("READY", int(out["ocr_error"].notna().sum()), posts())
"""

SETUP_10K = r"""
import pathlib, random, time
import pandas as pd
from mathpix_nb import Review
from tests.jupyter.test_review import write_images

work = pathlib.Path({work!r})
paths = write_images(work / "img", 1000)
rng = random.Random(7)
n = 10_000
texts = [r"Row %d: \( x^{{%d}} + \frac{{a_{{%d}}}}{{b}} \) and some prose about page %d"
         % (i, i % 9, i, i) for i in range(n)]
out = pd.DataFrame({{
    "image_path": [paths[i % 1000] for i in range(n)],
    "ocr_text": texts,
    "ocr_confidence": pd.array([round(rng.random(), 4) for _ in range(n)], dtype="Float64"),
    "ocr_request_id": ["req-%05d" % i for i in range(n)],
    "ocr_error": [None if i % 97 else "image_no_content: nothing" for i in range(n)],
}})
t = time.perf_counter()
review = Review(out, journal=False)
print("READY", round(time.perf_counter() - t, 3))
"""

EXEC = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = "";
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === "stream") out += msg.content.text;
    else if (t === "error") out += `ERROR ${msg.content.ename}: ${msg.content.evalue}`;
  };
  await future.done;
  return out;
}"""


@contextmanager
def _lab(tmp_path: Path, app: str = "jupyterlab") -> Iterator[str]:
    """JupyterLab (or Notebook 7) with one notebook cell, ``review``; the notebook's URL."""
    with jupyter(tmp_path, app) as server:
        write_notebook(server.root / "review.ipynb", ["review"])
        yield server.url("review.ipynb")


def _open(page: Any, url: str, setup: str) -> str:
    open_notebook(page, url)
    said = str(page.evaluate(EXEC, setup))
    assert "READY" in said, said
    return said


def _py(page: Any, code: str) -> Any:
    """Run ``code`` in the kernel; it prints one JSON line, returned decoded."""
    said = str(page.evaluate(EXEC, code))
    assert "ERROR" not in said, said
    return json.loads(said.strip().splitlines()[-1])


def _heap(cdp: Any) -> dict[str, float]:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 1), "nodes": metrics["Nodes"]}


ROWS_DRAWN = """() => {
  const rows = [...document.querySelectorAll('.mpx-review .mpx-rv-row')];
  return rows.length > 0 && rows.every((r) => r.querySelector('.mpx-rv-doc').dataset.rendered
    && r.querySelector('.mpx-rv-doc').dataset.rendered !== 'pending');
}"""
THUMBS_IN = """() => {
  const rows = [...document.querySelectorAll('.mpx-review .mpx-rv-row')];
  return rows.length > 0 && rows.every((r) => r.querySelector('.mpx-rv-thumb img'));
}"""
ROWS_AT = """(pos) => {
  const rows = [...document.querySelectorAll('.mpx-review .mpx-rv-row')];
  return rows.some((r) => +r.dataset.pos === pos) && rows.every((r) =>
    r.querySelector('.mpx-rv-doc').dataset.rendered !== 'pending');
}"""
FRAMES_START = """() => {
  const f = (window.__mpxFrames = {deltas: [], last: performance.now(), on: true});
  const tick = (now) => {
    f.deltas.push(now - f.last);
    f.last = now;
    if (f.on) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
FRAMES_STOP = """() => {
  const f = window.__mpxFrames; f.on = false;
  const d = f.deltas.slice(1).sort((a, b) => a - b);
  return {count: d.length, p95: Math.round(d[Math.floor(d.length * 0.95)]),
          max: Math.round(d[d.length - 1])};
}"""
VISIBLE = """() => [...document.querySelectorAll('.mpx-review .mpx-rv-row')].map((r) => ({
  pos: +r.dataset.pos, row: +r.dataset.row,
  conf: r.querySelector('.mpx-rv-conf').textContent,
  err: !!r.querySelector('.mpx-rv-errid'),
  rendered: r.querySelector('.mpx-rv-doc').dataset.rendered,
  svg: !!r.querySelector('.mpx-rv-doc mjx-container svg'),
}))"""


@pytest.mark.timeout(300)
def test_review_500_rows_scroll_filter_edit_reocr(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with _lab(tmp_path) as url, browser_page(1200) as page:
        said = _open(page, url, SETUP_500.format(work=str(work)))
        # 3 blank images (identical: sent once), so 498 requests paid
        assert said.split()[1:3] == ["3", "498"]
        run_all_cells(page)
        root = page.locator(".mpx-review")
        root.wait_for(timeout=90_000)
        page.wait_for_function(
            "() => document.querySelector('.mpx-review').dataset.count === '500'"
        )
        page.wait_for_function(ROWS_DRAWN, timeout=60_000)
        page.wait_for_function(THUMBS_IN, timeout=60_000)
        rows = page.evaluate(VISIBLE)
        assert [r["err"] for r in rows[:4]] == [True, True, True, False]  # errors on top
        confs = [float(r["conf"]) for r in rows[3:]]
        assert confs == sorted(confs)  # then lowest confidence first
        assert any(r["svg"] for r in rows)  # Mathpix's renderer drew the math
        assert len(rows) < 30  # virtualised: only the rows in view (+ a few) exist
        keep(root, "review_lab.png", docs="review.png")

        # Scroll to the middle: the rows there arrive and are drawn.
        page.locator(".mpx-rv-viewport").evaluate("(n) => { n.scrollTop = 250 * 112; }")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.mpx-rv-row')]"
            ".some((r) => +r.dataset.pos === 252)"
        )
        page.wait_for_function(ROWS_DRAWN, timeout=30_000)
        middle = page.evaluate(VISIBLE)
        assert min(r["pos"] for r in middle) > 200 and len(middle) < 30

        # Filters: errors only, then confidence below 0.1, then text contains.
        page.locator(".mpx-rv-errors input").check()
        page.wait_for_function("() => document.querySelector('.mpx-review').dataset.count === '3'")
        page.locator(".mpx-rv-errors input").uncheck()
        page.locator(".mpx-rv-below").fill("0.1")
        page.locator(".mpx-rv-below").dispatch_event("change")
        expected = _py(
            page, "print(int(((out.ocr_confidence < 0.1) | out.ocr_confidence.isna()).sum()))"
        )
        page.wait_for_function(
            f"() => document.querySelector('.mpx-review').dataset.count === '{expected}'"
        )
        page.wait_for_function(ROWS_DRAWN)
        low = page.evaluate(VISIBLE)
        assert all(r["err"] or float(r["conf"]) < 0.1 for r in low)
        page.locator(".mpx-rv-below").fill("")
        page.locator(".mpx-rv-below").dispatch_event("change")
        page.locator(".mpx-rv-search").fill("img 00")  # nothing matches
        page.wait_for_function("() => document.querySelector('.mpx-review').dataset.count === '0'")
        assert page.locator(".mpx-rv-empty").is_visible()
        page.locator(".mpx-rv-search").fill("")
        page.wait_for_function(
            "() => document.querySelector('.mpx-review').dataset.count === '500'"
        )
        page.wait_for_function(ROWS_DRAWN)

        # Keyboard: j j j j k -> position 3 (the first row without an error); Enter edits it.
        root.focus()
        for key in "jjjjk":
            page.keyboard.press(key)
        assert root.get_attribute("data-selected") == "3"
        page.keyboard.press("Enter")
        detail = page.locator(".mpx-rv-detail")
        detail.wait_for(state="visible")
        page.wait_for_function(
            "() => document.querySelector('.mpx-rv-stage').dataset.loaded === 'true'"
        )
        edited = int(detail.get_attribute("data-row") or -1)
        editor = page.locator(".mpx-rv-editor")
        assert page.evaluate("() => document.activeElement.classList.contains('mpx-rv-editor')")
        editor.fill(r"Fixed by hand: \( E = m c^{2} \)")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "() => document.querySelector('.mpx-rv-dstatus').textContent.startsWith('Saved')"
        )
        page.wait_for_function(
            "() => /fixed/.test(document.querySelector('.mpx-rv-row.mpx-selected').textContent)"
        )
        page.keyboard.press("Escape")
        assert detail.is_hidden()

        # Re-OCR the next row with a box drawn on its image.
        page.keyboard.press("j")
        thumb = page.locator(".mpx-rv-row.mpx-selected .mpx-rv-thumb")
        thumb.click()
        page.wait_for_function(
            "() => document.querySelector('.mpx-rv-stage').dataset.loaded === 'true'"
        )
        again = int(detail.get_attribute("data-row") or -1)
        assert again != edited
        big = page.locator(".mpx-rv-big").bounding_box()
        assert big is not None
        page.mouse.move(big["x"] + 1, big["y"] + 1)
        page.mouse.down()
        page.mouse.move(big["x"] + big["width"] / 2, big["y"] + big["height"] / 2, steps=5)
        page.mouse.up()
        box = [int(v) for v in page.locator(".mpx-rv-crop-input").input_value().split(",")]
        assert 35 <= box[2] <= 41 and 17 <= box[3] <= 21  # about half of the 80x40 image
        assert page.locator(".mpx-rv-box").is_visible()
        page.locator(".mpx-rv-reocr").click()
        page.wait_for_function(
            "() => document.querySelector('.mpx-rv-dstatus').textContent.startsWith('Read again')"
        )
        assert page.locator(".mpx-rv-editor").input_value().startswith(f"echo {box[2]}x{box[3]} ")
        keep(detail, "review_lab_detail.png")

        # The Dark theme: the view follows JupyterLab's colours.
        light = root.evaluate("(n) => getComputedStyle(n).color")
        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
        )
        page.wait_for_function(THEME_IS, arg=True, timeout=30_000)
        page.wait_for_timeout(300)
        assert root.evaluate("(n) => getComputedStyle(n).color") != light
        keep(root, "review_lab_dark.png")

        # The kernel's DataFrame and the journal file.
        state = _py(
            page,
            f"print(json.dumps({{'fixed': out.ocr_text_fixed.iloc[{edited}], 'again': "
            f"out.ocr_text_fixed.iloc[{again}], 'reviewed': int(out.ocr_reviewed.sum()), "
            "'posts': posts()}))",
        )
        assert state["fixed"] == r"Fixed by hand: \( E = m c^{2} \)"
        assert state["again"].startswith(f"echo {box[2]}x{box[3]} ")
        assert state["reviewed"] == 2
        assert state["posts"] == 499  # the re-OCR paid one request, nothing else
    from mathpix_nb._journal import Journal

    with Journal(work / "journal.sqlite3") as journal:
        texts = sorted(c.text for c in journal.corrections().values())
        counts = journal.counts()
    assert texts[0].startswith("Fixed by hand") or texts[1].startswith("Fixed by hand")
    assert any(t.startswith(f"echo {box[2]}x{box[3]} ") for t in texts)
    assert counts.get("done") == 497 + 1  # the bulk run's results + the re-OCR's


@pytest.mark.timeout(300)
def test_review_10000_rows_first_paint_and_memory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with _lab(tmp_path) as url, browser_page(1200) as page:
        said = _open(page, url, SETUP_10K.format(work=str(work)))
        init_s = float(said.split()[1])
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        before = _heap(cdp)
        start = time.monotonic()
        run_all_cells(page)
        page.wait_for_function(
            "() => { const r = document.querySelector('.mpx-review');"
            " return r && r.dataset.firstRowsMs; }",
            timeout=90_000,
            polling=16,
        )
        rows_wall = time.monotonic() - start
        page.wait_for_function(ROWS_DRAWN, timeout=60_000, polling=16)
        drawn_wall = time.monotonic() - start
        page.wait_for_function(THUMBS_IN, timeout=60_000)
        root = page.locator(".mpx-review")
        assert root.get_attribute("data-count") == "10000"
        opened = _heap(cdp)
        # Smoothness: wheel-scroll for about 3 s while the page records its frame times.
        viewport = page.locator(".mpx-rv-viewport")
        viewport.hover()
        page.evaluate(FRAMES_START)
        for _ in range(90):
            page.mouse.wheel(0, 240)
            page.wait_for_timeout(30)
        frames = page.evaluate(FRAMES_STOP)
        # Jumps across the whole list: each view's rows arrive and are drawn.
        jumps = []
        for k in range(1, 41):
            target = 10_000 * k // 40 - 10
            t = time.monotonic()
            viewport.evaluate(f"(n) => {{ n.scrollTop = {target} * 112; }}")
            page.wait_for_function(ROWS_AT, arg=target, timeout=30_000, polling=16)
            jumps.append(time.monotonic() - t)
        scrolled = _heap(cdp)
        in_dom = page.locator(".mpx-rv-row").count()
        bench = {
            "rows": 10_000,
            "python_init_s": init_s,
            "first_rows_ms_in_page": int(root.get_attribute("data-first-rows-ms") or -1),
            "first_rendered_ms_in_page": int(root.get_attribute("data-first-rendered-ms") or -1),
            "cell_to_rows_s": round(rows_wall, 2),
            "cell_to_math_drawn_s": round(drawn_wall, 2),
            "wheel_frames": frames["count"],
            "wheel_frame_p95_ms": frames["p95"],
            "wheel_frame_max_ms": frames["max"],
            "scroll_jump_median_ms": round(sorted(jumps)[len(jumps) // 2] * 1000),
            "scroll_jump_max_ms": round(max(jumps) * 1000),
            "heap_before_mb": before["heap_mb"],
            "heap_open_mb": opened["heap_mb"],
            "heap_after_scroll_mb": scrolled["heap_mb"],
            "dom_nodes_before": before["nodes"],
            "dom_nodes_after_scroll": scrolled["nodes"],
            "rows_in_dom": in_dom,
        }
        print("REVIEW_BENCH", json.dumps(bench))
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "review_bench.json").write_text(json.dumps(bench, indent=2))
        assert in_dom < 30
        assert bench["cell_to_math_drawn_s"] < 15
        assert scrolled["heap_mb"] - before["heap_mb"] < 150


SETUP_SMALL = SETUP_500.replace("500, blank=(3, 7, 11)", "40, blank=(3,)")


def _deep(check: str) -> str:
    """``check`` with its document queries reaching into shadow roots (marimo's widgets)."""
    prelude = """const all = (sel) => {
    const out = [];
    const walk = (root) => {
      out.push(...root.querySelectorAll(sel));
      for (const n of root.querySelectorAll('*')) if (n.shadowRoot) walk(n.shadowRoot);
    };
    walk(document);
    return out;
  };
  const one = (sel) => all(sel)[0] || null;
  """
    body = check.replace("document.querySelectorAll(", "all(").replace(
        "document.querySelector(", "one("
    )
    head, _, rest = body.partition("=> ")
    if rest.startswith("{"):
        return f"{head}=> {{ {prelude}{rest[1:]}"
    return f"{head}=> {{ {prelude}return {rest}; }}"


def _check_small(page: Any, screenshot: str) -> None:
    """40 rows: drawn with math and thumbnails; a thumbnail opens the image; Save writes."""
    page.wait_for_function(
        _deep("() => { const r = document.querySelector('.mpx-review');"
              " return !!r && r.dataset.count === '40'; }"),
        timeout=90_000,
    )  # fmt: skip
    page.wait_for_function(_deep(ROWS_DRAWN), timeout=60_000)
    page.wait_for_function(_deep(THUMBS_IN), timeout=60_000)
    rows = page.evaluate(_deep(VISIBLE))
    assert rows[0]["err"] and any(r["svg"] for r in rows)
    page.locator(".mpx-rv-row[data-pos='1'] .mpx-rv-thumb").click()
    page.wait_for_function(
        _deep("() => document.querySelector('.mpx-rv-stage').dataset.loaded === 'true'")
    )
    page.locator(".mpx-rv-editor").fill("fixed in this front end")
    page.locator(".mpx-rv-save").click()
    page.wait_for_function(
        _deep("() => document.querySelector('.mpx-rv-dstatus').textContent.startsWith('Saved')")
    )
    keep(page.locator(".mpx-review"), screenshot)


@pytest.mark.timeout(240)
def test_review_in_notebook7(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with _lab(tmp_path, "notebook") as url, browser_page(1000) as page:
        _open(page, url, SETUP_SMALL.format(work=str(work)))
        run_all_cells(page)
        _check_small(page, "review_notebook7.png")
        fixed = _py(page, "print(json.dumps(out.ocr_text_fixed.dropna().tolist()))")
        assert fixed == ["fixed in this front end"]


MARIMO_APP = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import pathlib
    import pandas as pd
    import mathpix_nb.pandas
    from mathpix_nb import Mathpix
    from mathpix_nb.server import LocalServer
    from tests.jupyter.test_review import graded_engine, write_images

    work = pathlib.Path({work!r})
    server = LocalServer(engine=graded_engine()).start()
    client = Mathpix(server.app_id, server.app_key, base_url=server.url)
    paths = write_images(work / "img", 40, blank=(3,))
    out = pd.DataFrame({{"image_path": paths}}).mathpix.ocr(
        "image_path", client=client, journal=str(work / "journal.sqlite3"),
        poll_interval=0.05, progress=False)
    review = out.mathpix.review(client=client, journal=str(work / "journal.sqlite3"))
    return (review,)


@app.cell
def _(review):
    review
    return


if __name__ == "__main__":
    app.run()
"""


@pytest.mark.timeout(240)
def test_review_in_marimo(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with marimo(tmp_path, MARIMO_APP.format(work=str(work))) as url, browser_page(1000) as page:
        page.goto(url)
        _check_small(page, "review_marimo.png")
    from mathpix_nb._journal import Journal

    with Journal(work / "journal.sqlite3") as journal:
        assert [c.text for c in journal.corrections().values()] == ["fixed in this front end"]
