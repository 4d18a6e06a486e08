"""``client.strokes()`` and live strokes sessions against the local server over loopback, for
every auth mode: keys, a fixed app token, minted tokens, a token_url, the team proxy, the EU
region; sessions send only new strokes, renew ahead of expiry on the client's clock, and reopen
when Mathpix says the session is over. The echo engine names the ink it got
(``echo strokes:N points:M bbox:x0,y0,x1,y1``)."""

from __future__ import annotations

import inspect
import time
from typing import Any

import pytest

from mathpix_nb import (
    AppToken,
    ConfigurationError,
    FakeClock,
    NotAllowedError,
    OcrResult,
    OptionError,
    StrokesError,
    TokenError,
)
from mathpix_nb.server import Faults

from ._api_support import Recorder, SessionTokenEndpoint, TeamProxy, close_http
from .conftest import TokenEndpoint, keys, scan_for_secrets

pytestmark = pytest.mark.anyio

# two strokes, five points: bbox 10,5 .. 40,50
INK = [[(10, 5), (20, 30), (40, 50)], [(15, 10), (25, 12)]]
INK_ECHO = "echo strokes:2 points:5 bbox:10,5,40,50"


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [
        "points",
        "api",
        "wrapped",
        "numpy",
    ],
)
async def test_every_stroke_shape_arrives_as_drawn(make, srv, shape):
    if shape == "points":
        strokes: Any = INK
    elif shape == "api":
        strokes = {"x": [[10, 20, 40], [15, 25]], "y": [[5, 30, 50], [10, 12]]}
    elif shape == "wrapped":  # the docs' request body, pasted
        strokes = {
            "strokes": {"strokes": {"x": [[10, 20, 40], [15, 25]], "y": [[5, 30, 50], [10, 12]]}}
        }
    else:
        np = pytest.importorskip("numpy")
        strokes = [np.array(s, dtype=np.float64) for s in INK]
    api = make(**keys(srv))
    result = await api.call("strokes", strokes)
    assert isinstance(result, OcrResult)
    assert result.text.startswith(INK_ECHO)
    assert result.is_handwritten is True
    (record,) = [r for r in srv.log if r.endpoint == "/v3/strokes"]
    assert record.auth_mode == "keys" and record.status_code == 200


@pytest.mark.parametrize(
    ("strokes", "says"),
    [
        ([], "empty"),
        ([[]], "strokes[0] has no points"),
        ([[(1, 2)], []], "strokes[1] has no points"),
        ([(1, 2), (3, 4)], "Wrap it in a list"),  # one stroke, not wrapped
        ([[(1, 2, 3)]], "strokes[0][0] is (1, 2, 3), not an (x, y) point"),
        ([[(1, float("nan"))]], "finite"),
        ([[(1, float("inf"))]], "finite"),
        ([[("1", 2)]], "not a number"),
        ([[(True, 2)]], "not a number"),
        ({"x": [[1, 2]], "y": [[1]]}, "ragged"),
        ({"x": [[1, 2]], "y": [[1, 2], [3]]}, "each stroke"),
        ({"x": [[1]], "y": [[1]], "t": [[0]]}, "exactly the keys 'x' and 'y'"),
        ({"x": [1, 2], "y": [1, 2]}, 'strokes["x"][0] must be a list'),
        ("x^2", "must be a list of strokes"),
        ([[(x, x) for x in range(70_000)]], "512 KB"),
    ],
)
async def test_bad_strokes_are_refused_before_sending(make, srv, strokes, says):
    api = make(**keys(srv))
    with pytest.raises(StrokesError, match=None) as caught:
        await api.call("strokes", strokes)
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)  # StrokesError is an ImageError (bad input)
    assert not srv.log  # nothing was sent


async def test_options_are_typed_and_sent(make, srv):
    api = make(**keys(srv))
    with pytest.raises(OptionError, match=r"include_line_dat.*Did you mean 'include_line_data'"):
        await api.call("strokes", INK, include_line_dat=True)
    with pytest.raises(ConfigurationError, match="does not take async"):
        await api.call("strokes", INK, **{"async": True})
    result = await api.call("strokes", INK, formats=["text", "latex_styled"], tags=["ink"])
    assert result.text.startswith(INK_ECHO)
    assert [r.tags for r in srv.log if r.endpoint == "/v3/strokes"] == [("ink",)]


# -- auth modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["keys", "fixed", "minted", "token_url", "proxy", "eu"])
async def test_strokes_with_every_auth_mode(make, srv, mode):
    endpoint: Any = None
    proxy: Any = None
    if mode == "keys":
        kwargs = keys(srv)
    elif mode == "fixed":
        token = await make(**keys(srv)).call("app_token", 60)
        kwargs = dict(app_token=token.app_token, region_urls=srv.urls)
    elif mode == "minted":
        kwargs = keys(srv, use_app_tokens=True)
    elif mode == "token_url":
        endpoint = TokenEndpoint(srv, "caller-secret").__enter__()
        kwargs = dict(token_url=endpoint.url, token_auth="caller-secret", region_urls=srv.urls)
    elif mode == "proxy":
        proxy = TeamProxy(srv, "team-secret").__enter__()
        kwargs = dict(proxy_url=proxy.url, proxy_auth="team-secret")
    else:
        kwargs = keys(srv, region="eu")
    try:
        srv.clear_log()
        api = make(**kwargs)
        result = await api.call("strokes", INK)
        assert result.text.startswith(INK_ECHO)
        (record,) = [r for r in srv.log if r.endpoint == "/v3/strokes"]
        expected = {"keys": "keys", "eu": "keys", "proxy": "keys"}.get(mode, "app_token")
        assert record.auth_mode == expected
        assert record.region == ("eu" if mode == "eu" else "global")
        if proxy is not None:
            assert proxy.forwarded == ["POST /v3/strokes"]
    finally:
        if endpoint is not None:
            endpoint.__exit__()
        if proxy is not None:
            proxy.__exit__()


# -- live sessions -----------------------------------------------------------------------------
async def test_a_session_sends_new_strokes_and_reads_the_whole_drawing(make, kind, srv):
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(srv), http_client=http)
    session = api.client.strokes_session()
    assert session.expires_at is None  # minted lazily: nothing is billed before the first add
    first = await run(session.add(INK[:1]))
    assert first.text.startswith("echo strokes:1 points:3 bbox:10,5,40,50")
    second = await run(session.add(INK[1:]))
    assert second.text.startswith(INK_ECHO)  # Mathpix reads the whole drawing
    assert session.result is second and session.strokes == [list(s) for s in INK]
    assert session.sessions == 1

    (mint,) = recorder.bodies("/v3/app-tokens")
    assert mint == {"expires": 300, "include_strokes_session_id": True}
    sent = recorder.to("/v3/strokes")
    assert len(sent) == 2
    bodies = recorder.bodies("/v3/strokes")
    assert [len(b["strokes"]["strokes"]["x"]) for b in bodies] == [1, 1]  # only the new ones
    assert len({b["strokes_session_id"] for b in bodies}) == 1
    assert bodies[0]["strokes_session_id"].startswith("strokes_")
    for request in sent:  # the session's token, never the key
        assert request.headers["app_token"].startswith("token_")
        assert "app_key" not in request.headers
    usage = {r.endpoint for r in srv.log}
    assert usage == {"/v3/app-tokens", "/v3/strokes"}
    scan_for_secrets([repr(session), repr(first)], [srv.app_key, bodies[0]["strokes_session_id"]])
    await close_http(http)


async def test_a_session_renews_before_it_expires_on_the_client_clock(make, kind, srv):
    clock = FakeClock()
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(srv), http_client=http, clock=clock)
    session = api.client.strokes_session(expires=300)
    await run(session.add(INK[:1]))
    old_end = session.expires_at
    clock.advance(280)  # 20 s left: inside the renewal margin (10 % of 300 s = 30 s)
    result = await run(session.add(INK[1:]))
    assert result.text.startswith(INK_ECHO)
    assert session.sessions == 2 and session.expires_at != old_end
    assert len(recorder.bodies("/v3/app-tokens")) == 2
    first, second = recorder.bodies("/v3/strokes")
    assert first["strokes_session_id"] != second["strokes_session_id"]
    assert len(second["strokes"]["strokes"]["x"]) == 2  # the new session gets the whole drawing
    assert clock.sleeps == []  # nothing waited
    clock.advance(100)  # inside the new session's lifetime: no renewal
    await run(session.add([[(1, 1), (2, 2)]]))
    assert session.sessions == 2
    await close_http(http)


@pytest.mark.parametrize("mode", ["200", "401"])
async def test_a_session_mathpix_ended_is_reopened_once(make, kind, srv, mode):
    """Mathpix says the session token is no longer valid (``unauthorized_token_request``, or
    401): a new session gets the whole drawing; the user sees no error."""
    srv.configure(expired_token_mode=mode)
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(srv), http_client=http)
    session = api.client.strokes_session()
    await run(session.add(INK[:1]))
    srv.configure(faults=Faults(sequence=("token_expired",), endpoints=("/v3/strokes",)))
    result = await run(session.add(INK[1:]))
    assert result.text.startswith(INK_ECHO)
    assert session.sessions == 2
    statuses = [r.error_id for r in srv.log if r.endpoint == "/v3/strokes"]
    expired = "unauthorized_token_request" if mode == "200" else "http_unauthorized"
    assert statuses == [None, expired, None]
    assert len(recorder.bodies("/v3/strokes")[-1]["strokes"]["strokes"]["x"]) == 2
    await close_http(http)


def test_a_real_session_expiry_is_renewed(srv):
    """A session token that really ran out at the server (1 s lifetime), while the client's
    frozen clock still thinks it is fresh: the expired answer makes the client reopen."""
    from mathpix_nb import Mathpix

    with Mathpix(**keys(srv), clock=FakeClock()) as client:
        session = client.strokes_session(expires=1)
        session.add(INK[:1])
        time.sleep(1.1)
        assert session.add(INK[1:]).text.startswith(INK_ECHO)
        assert session.sessions == 2


async def test_a_broken_connection_mid_session_reopens_instead_of_resending(make, kind, srv):
    """An incremental request whose answer was lost may already be in the session: it is not
    resent blindly (the session would hold it twice); a new session gets the whole drawing."""
    recorder = Recorder()
    http = recorder.client_for(kind)
    api = make(**keys(srv), http_client=http)
    session = api.client.strokes_session()
    await run(session.add(INK[:1]))
    srv.configure(faults=Faults(sequence=("drop",), endpoints=("/v3/strokes",)))
    result = await run(session.add(INK[1:]))
    assert result.text.startswith(INK_ECHO)
    assert session.sessions == 2
    await close_http(http)


async def test_clear_starts_a_new_drawing(make, srv):
    api = make(**keys(srv))
    session = api.client.strokes_session()
    await run(session.add(INK))
    session.clear()
    assert session.strokes == [] and session.result is None
    result = await run(session.add([[(1, 1), (3, 4)]]))
    assert result.text.startswith("echo strokes:1 points:2 bbox:1,1,3,4")
    assert session.sessions == 2


async def test_a_session_through_a_token_url_and_the_team_proxy(make, srv):
    with SessionTokenEndpoint(srv, "caller-secret") as endpoint:
        api = make(token_url=endpoint.url, token_auth="caller-secret", region_urls=srv.urls)
        session = api.client.strokes_session(expires=120)
        assert (await run(session.add(INK))).text.startswith(INK_ECHO)
        assert endpoint.bodies == [{"expires": 120, "include_strokes_session_id": True}]
        # the client's own cached token (for text()) is not the session's
        assert api.client._core.credentials.usable_token() is None
    with TeamProxy(srv, "team-secret") as proxy:
        api = make(proxy_url=proxy.url, proxy_auth="team-secret")
        session = api.client.strokes_session()
        await run(session.add(INK[:1]))
        assert (await run(session.add(INK[1:]))).text.startswith(INK_ECHO)
        # minted through the proxy; the strokes go through it too (it adds the key)
        assert proxy.forwarded == ["POST /v3/app-tokens", "POST /v3/strokes", "POST /v3/strokes"]
        assert proxy.refused == 0


async def test_a_token_endpoint_without_sessions_is_named(make, srv):
    with TokenEndpoint(srv, "caller-secret") as endpoint:  # passes only "expires" upstream
        api = make(token_url=endpoint.url, token_auth="caller-secret", region_urls=srv.urls)
        session = api.client.strokes_session()
        with pytest.raises(NotAllowedError, match="answered without a strokes_session_id"):
            await run(session.add(INK))


async def test_a_fixed_token_client_uses_a_given_session_and_says_when_it_ends(make, srv):
    admin = make(**keys(srv))
    plain = await admin.call("app_token", 60)
    api = make(app_token=plain.app_token, region_urls=srv.urls)
    with pytest.raises(NotAllowedError, match="token= an AppToken"):
        api.client.strokes_session()
    assert not [r for r in srv.log if r.endpoint == "/v3/strokes"]
    with pytest.raises(ConfigurationError, match="strokes_session_id"):
        api.client.strokes_session(token=plain)  # a token without a session
    given = await admin.call("app_token", 60, include_strokes_session_id=True)
    assert isinstance(given, AppToken) and given.strokes_session_id
    session = api.client.strokes_session(token=given)
    assert (await run(session.add(INK))).text.startswith(INK_ECHO)
    srv.configure(faults=Faults(sequence=("token_expired",), endpoints=("/v3/strokes",)))
    with pytest.raises(TokenError, match="cannot open a new one") as caught:
        await run(session.add(INK[:1]))
    scan_for_secrets([str(caught.value), repr(session)], [given.app_token, plain.app_token])


async def test_session_arguments_are_checked(make, srv):
    api = make(**keys(srv))
    with pytest.raises(ConfigurationError, match="caps strokes sessions at 300 s"):
        api.client.strokes_session(expires=600)
    with pytest.raises(ConfigurationError, match="at most 300 s"):
        await api.call("app_token", 900, include_strokes_session_id=True)
    with pytest.raises(OptionError, match="Did you mean 'formats'"):
        api.client.strokes_session(format=["text"])
    assert not srv.log


@pytest.mark.parametrize("mode", ["eu", "minted"])
async def test_a_session_in_the_eu_and_with_minted_tokens(make, srv, mode):
    """The session's token is minted in the client's own region (EU data stays in the EU),
    and a client that mints app tokens for text() still opens its own strokes session."""
    extra: dict[str, Any] = {"region": "eu"} if mode == "eu" else {"use_app_tokens": True}
    api = make(**keys(srv, **extra))
    srv.clear_log()
    session = api.client.strokes_session(expires=60)
    await run(session.add(INK[:1]))
    result = await run(session.add(INK[1:]))
    assert result.text.startswith(INK_ECHO) and session.sessions == 1
    mints = [r for r in srv.log if r.endpoint == "/v3/app-tokens"]
    strokes = [r for r in srv.log if r.endpoint == "/v3/strokes"]
    assert len(mints) == 1 and len(strokes) == 2
    region = "eu" if mode == "eu" else "global"
    assert {r.region for r in mints + strokes} == {region}
    assert {r.auth_mode for r in strokes} == {"app_token"}
