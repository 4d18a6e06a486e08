"""The surfaces through the proxy, configured by MATHPIX_PROXY_URL + MATHPIX_PROXY_AUTH only:
bulk takes its async+tags path, the LangChain loader loads a PDF."""

from __future__ import annotations

import httpx
import pytest

from .conftest import ALICE
from .proxy_support import env_client

pytestmark = pytest.mark.timeout(90)


def _usage_types(upstream) -> dict[str, int]:
    answer = httpx.get(
        f"{upstream.urls['global']}/v3/ocr-usage",
        params={"group_by": "usage_type"},
        headers={"app_id": upstream.app_id, "app_key": upstream.app_key},
    )
    counts: dict[str, int] = {}
    for row in answer.json()["ocr_usage"]:
        counts[row["usage_type"]] = counts.get(row["usage_type"], 0) + row["count"]
    return counts


def test_bulk_takes_the_async_tags_path(proxy_service, upstream, monkeypatch, png_bytes, tmp_path):
    pd = pytest.importorskip("pandas")
    from PIL import Image, ImageDraw

    import mathpix_nb.pandas  # noqa: F401  (registers df.mathpix)

    paths = []
    for i in range(4):  # four different images (identical ones would be answered once)
        image = Image.new("RGB", (100 + 10 * i, 40), "white")
        ImageDraw.Draw(image).text((5, 10), f"x^{i}", fill="black")
        path = tmp_path / f"img{i}.png"
        image.save(path)
        paths.append(str(path))
    monkeypatch.setenv("MATHPIX_PROXY_URL", proxy_service.url)
    monkeypatch.setenv("MATHPIX_PROXY_AUTH", ALICE)
    before_async = _usage_types(upstream).get("image-async", 0)
    before = len(upstream.log)
    out = pd.DataFrame({"image": paths}).mathpix.ocr("image")
    assert out["ocr_text"].str.startswith("echo").all(), out.to_dict()
    records = upstream.log[before:]
    assert any(r.endpoint == "/v3/ocr-results" for r in records)
    assert _usage_types(upstream).get("image-async", 0) - before_async == 4
    texts = [r for r in records if r.endpoint == "/v3/text"]
    assert texts and all("mathpix-nb-caller:bearer:alice" in r.tags for r in texts)


def test_langchain_loader_loads_a_pdf(proxy_service, monkeypatch, pdf_bytes, tmp_path) -> None:
    pytest.importorskip("langchain_core")
    from mathpix_nb.langchain import MathpixLoader

    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf_bytes)
    env_client(monkeypatch, proxy_service.url, ALICE).close()  # sets the two variables
    docs = MathpixLoader(str(path), mode="page").load()
    assert len(docs) == 2
    assert all("page" in d.page_content for d in docs)
