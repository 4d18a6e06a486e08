"""A page on another origin calls the local server from headless Chromium with an app token,
as Mathpix's client-side examples do: the browser sends a CORS preflight (custom
``app_token`` / ``strokes_session_id`` headers), then the real requests, and the page reads
the answers, error envelopes included. See shared/browser-testing.md for the flags."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from mathpix_nb._serving import ThreadedServer
from mathpix_nb.server import LocalServer
from tests.jupyter._browser import CHROMIUM, CHROMIUM_ARGS

from .conftest import data_uri, echo_text, make_png

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]

# What a page does: text OCR with an app token, a live strokes request, an error answer.
SCRIPT = """
async function run(api, token, session, src) {
  const out = {};
  const text = await fetch(api + '/v3/text', {
    method: 'POST',
    headers: {'app_token': token, 'Content-Type': 'application/json'},
    body: JSON.stringify({src: src, formats: ['text']}),
  });
  out.text = {status: text.status, body: await text.json()};
  const ink = await fetch(api + '/v3/strokes', {
    method: 'POST',
    headers: {'app_token': token, 'strokes_session_id': session,
              'Content-Type': 'application/json'},
    body: JSON.stringify({strokes: {strokes: {x: [[1, 30, 60]], y: [[1, 40, 2]]}}}),
  });
  out.ink = {status: ink.status, body: await ink.json()};
  const missing = await fetch(api + '/v3/not-a-route', {headers: {'app_token': token}});
  out.missing = {status: missing.status, body: await missing.json()};
  return out;
}
"""


class _Page:
    """Serves the test page (a different origin from the API: another port)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        page = f"<!DOCTYPE html><html><head><script>{SCRIPT}</script></head><body>ok</body></html>"
        await HTMLResponse(page)(scope, receive, send)


@pytest.mark.timeout(60)
def test_browser_page_calls_the_api_with_an_app_token():
    playwright = pytest.importorskip("playwright.sync_api")
    png = make_png(mark=11)
    with LocalServer() as api, ThreadedServer(_Page(), lifespan="off") as site:
        # the page's own backend mints the token with the key (never shipped to the page)
        token = httpx.post(
            api.url + "/v3/app-tokens",
            headers={"app_key": api.app_key},
            json={"include_strokes_session_id": True},
        ).json()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(20_000)
                page.goto(site.url + "/")
                out = page.evaluate(
                    "([api, token, session, src]) => run(api, token, session, src)",
                    [api.url, token["app_token"], token["strokes_session_id"], data_uri(png)],
                )
            finally:
                browser.close()
    assert out["text"]["status"] == 200, json.dumps(out)
    assert out["text"]["body"]["text"] == echo_text(png)
    assert out["ink"]["body"]["text"].startswith("echo strokes:1 points:3 bbox:1,1,60,40")
    assert out["missing"]["status"] == 404
    assert out["missing"]["body"]["error_info"]["id"] == "http_not_found"
    # the custom headers made the browser ask first, for each route
    preflights = {r.path for r in api.log if r.endpoint == "(preflight)"}
    assert preflights == {"/v3/text", "/v3/strokes", "/v3/not-a-route"}
    assert all(r.status_code == 204 for r in api.log if r.endpoint == "(preflight)")
    assert {r.auth_mode for r in api.log if r.endpoint in ("/v3/text", "/v3/strokes")} == {
        "app_token"
    }
