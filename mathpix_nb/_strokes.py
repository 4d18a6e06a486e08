"""Digital ink (``v3/strokes``): checked stroke input, one-shot recognition and live sessions.

``POST v3/strokes {"strokes": {"strokes": {"x": [[...], ...], "y": [[...], ...]}},
"strokes_session_id"?, ...v3/text options}`` answers like ``v3/text`` (512 KB body limit).
It takes keys, an app token (fixed, minted or from a ``token_url``) or the team proxy, like
``v3/text``.

A *live strokes session* (an app token minted with ``include_strokes_session_id``; docs:
"strokes_session_id must be sent along with the app_token as an auth header") is meant for
live results while someone writes; it is billed once, from its first request, and lives at
most 300 s. :class:`StrokesSession` keeps the drawing, sends only the new strokes with the
session's token (through a team proxy: with the proxy's credential and the session id), and
opens a fresh session ahead of expiry (or when Mathpix says the session
expired, or a connection broke mid-request), sending the whole drawing to it once.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import anyio
import httpx

from ._config import safe_url
from ._exceptions import (
    ConfigurationError,
    ImageError,
    NotAllowedError,
    SubmissionUncertain,
    TokenError,
    TransportError,
)
from ._models import AppToken, OcrResult
from ._options import StrokesOptions, check_options, merge_extra
from ._protocol import ClientCore, Flow

if TYPE_CHECKING:  # pragma: no cover
    from ._client import AsyncMathpix, Mathpix

__all__ = [
    "MAX_STROKES_BYTES",
    "AsyncStrokesSession",
    "StrokesError",
    "StrokesFlows",
    "StrokesInput",
    "StrokesSession",
    "normalize_strokes",
]

#: the docs' request limit for v3/strokes
MAX_STROKES_BYTES = 512 * 1024
#: the longest a strokes session lives (Mathpix caps ``expires`` at 300 s for sessions)
MAX_SESSION_SECONDS = 300

# A list of strokes, each a list of (x, y) points; or the API's {"x": [[...]], "y": [[...]]}.
StrokesInput = Union[Sequence[Sequence[Sequence[float]]], Mapping[str, Any]]  # noqa: UP007

Ink = tuple[list[list[float]], list[list[float]]]


class StrokesError(ImageError):
    """The strokes are empty or malformed (ragged, NaN, not (x, y) points, too large);
    the message names the place and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, source="strokes")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StrokesError(
            f"{where} is {value!r:.40} ({type(value).__name__}), not a number. Fix: coordinates "
            "are numbers (pixels of the drawing surface)."
        )
    number: float = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(number):
        raise StrokesError(f"{where} is {value!r}: coordinates must be finite (no NaN or inf).")
    return number


def _sequence(value: Any) -> bool:
    if isinstance(value, str | bytes | bytearray | Mapping):
        return False
    return isinstance(value, Sequence) or hasattr(value, "__array_interface__")


def _from_axes(xs: Any, ys: Any) -> Ink:
    for name, axis in (("x", xs), ("y", ys)):
        if not _sequence(axis):
            raise StrokesError(
                f'strokes["{name}"] must be a list of strokes (lists of numbers), got '
                f"{type(axis).__name__}."
            )
    if len(xs) != len(ys):
        raise StrokesError(
            f'strokes["x"] has {len(xs)} strokes but strokes["y"] has {len(ys)}: each stroke '
            "needs both its x and its y list."
        )
    out_x: list[list[float]] = []
    out_y: list[list[float]] = []
    for i, (sx, sy) in enumerate(zip(xs, ys, strict=True)):
        for name, axis in (("x", sx), ("y", sy)):
            if not _sequence(axis):
                raise StrokesError(
                    f'strokes["{name}"][{i}] must be a list of numbers (one stroke), got '
                    f"{axis!r:.40}. Fix: the API shape is "
                    '{"x": [[x0, x1, ...], ...], "y": [[y0, y1, ...], ...]}.'
                )
        if len(sx) != len(sy):
            raise StrokesError(
                f"stroke {i} is ragged: {len(sx)} x values but {len(sy)} y values. Fix: every "
                "point needs an x and a y."
            )
        if len(sx) == 0:
            raise StrokesError(f"stroke {i} has no points. Fix: drop empty strokes.")
        out_x.append([_number(v, f'strokes["x"][{i}][{j}]') for j, v in enumerate(sx)])
        out_y.append([_number(v, f'strokes["y"][{i}][{j}]') for j, v in enumerate(sy)])
    return out_x, out_y


def normalize_strokes(strokes: Any) -> Ink:
    """``strokes`` as the API's two lists (x per stroke, y per stroke), checked.

    Accepts a list of strokes, each a list of ``(x, y)`` points (tuples, lists or rows of a
    numpy array), or the API's ``{"x": [[...]], "y": [[...]]}`` (also wrapped in
    ``{"strokes": ...}`` once or twice, as in the request body)."""
    value = strokes
    for _ in range(2):  # {"strokes": {"strokes": {...}}} as in the docs' request body
        if isinstance(value, Mapping) and set(value) == {"strokes"}:
            value = value["strokes"]
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"x", "y"}, key=str)
        if extra or "x" not in value or "y" not in value:
            raise StrokesError(
                f"a strokes dict needs exactly the keys 'x' and 'y' (got {sorted(value, key=str)}"
                '). Fix: {"x": [[x0, x1, ...], ...], "y": [[y0, y1, ...], ...]}, or pass a '
                "list of strokes, each a list of (x, y) points."
            )
        xs, ys = _from_axes(value["x"], value["y"])
    elif _sequence(value):
        xs, ys = [], []
        for i, stroke in enumerate(value):
            if not _sequence(stroke):
                raise StrokesError(
                    f"strokes[{i}] is {stroke!r:.40}, not a stroke (a list of (x, y) points)."
                )
            if len(stroke) == 0:
                raise StrokesError(f"strokes[{i}] has no points. Fix: drop empty strokes.")
            sx: list[float] = []
            sy: list[float] = []
            for j, point in enumerate(stroke):
                if not _sequence(point) or len(point) != 2:
                    hint = (
                        " A single stroke? Wrap it in a list: [[(x, y), (x, y), ...]]."
                        if isinstance(point, numbers.Real)
                        else ""
                    )
                    raise StrokesError(
                        f"strokes[{i}][{j}] is {point!r:.40}, not an (x, y) point.{hint}"
                    )
                sx.append(_number(point[0], f"strokes[{i}][{j}][0] (x)"))
                sy.append(_number(point[1], f"strokes[{i}][{j}][1] (y)"))
            xs.append(sx)
            ys.append(sy)
    else:
        raise StrokesError(
            f"strokes must be a list of strokes (each a list of (x, y) points) or the API's "
            f'{{"x": [[...]], "y": [[...]]}}, got {type(value).__name__}.'
        )
    if not xs:
        raise StrokesError("strokes is empty: there is nothing to read. Fix: draw something.")
    return xs, ys


def _describe(xs: list[list[float]]) -> str:
    points = sum(len(s) for s in xs)
    return f"strokes ({len(xs)} stroke{'s' if len(xs) != 1 else ''}, {points} points)"


def _body(
    xs: list[list[float]], ys: list[list[float]], options: Mapping[str, Any], session: str | None
) -> dict[str, Any]:
    body = dict(options, strokes={"strokes": {"x": xs, "y": ys}})
    if session is not None:
        body["strokes_session_id"] = session
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_STROKES_BYTES:
        raise StrokesError(
            f"the strokes make a {size / 1024:.0f} KB request, over v3/strokes' 512 KB limit. "
            "Fix: send fewer points (simplify the strokes, or round coordinates)."
        )
    return body


class StrokesFlows:
    """``v3/strokes`` over one ``ClientCore``."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def options(
        self, options: Mapping[str, Any], extra: Mapping[str, Any] | None, what: str
    ) -> dict[str, Any]:
        for name in ("async", "src", "strokes"):
            if name in options:
                raise ConfigurationError(
                    f"{what} does not take {name}= (pass the strokes as the first argument; "
                    "v3/strokes answers at once)."
                )
        checked = check_options(
            StrokesOptions, options, what=what, also=("strokes_session_id", "extra_options")
        )
        if isinstance(checked.get("tags"), str):
            checked["tags"] = [checked["tags"]]
        return merge_extra(checked, extra, what=what)

    def strokes(
        self,
        strokes: Any,
        *,
        options: Mapping[str, Any] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        strokes_session_id: str | None = None,
    ) -> Flow[OcrResult]:
        """One ``v3/strokes`` request with the client's own credentials."""
        xs, ys = normalize_strokes(strokes)
        opts = self.options(options or {}, extra_options, "strokes()")
        if strokes_session_id is not None and (
            not isinstance(strokes_session_id, str) or not strokes_session_id
        ):
            raise ConfigurationError("strokes(): strokes_session_id must be a non-empty string")
        body = _body(xs, ys, opts, strokes_session_id)
        core = self.core
        source = _describe(xs)
        answer = yield from core.call(
            lambda h: core._request("POST", "v3/strokes", h, json=body), source=source
        )
        return OcrResult(raw=answer, source=source)

    # -- sessions --------------------------------------------------------------------------
    def can_mint_sessions(self) -> bool:
        creds = self.core.credentials
        return self.core.settings.has_keys or creds.kind == "url"

    def no_sessions(self) -> NotAllowedError:
        return NotAllowedError(
            "A live strokes session needs an app token minted with "
            "include_strokes_session_id, and this client has only a fixed app token. Fix: "
            "pass token= an AppToken that carries a strokes_session_id (minted server side "
            "with app_token(include_strokes_session_id=True)), or create the client with "
            "keys, token_url= or proxy_url=."
        )

    def mint_session(self, expires: int) -> Flow[AppToken]:
        """A new app token with a ``strokes_session_id`` (keys, team proxy or token_url)."""
        core = self.core
        if not self.can_mint_sessions():
            raise self.no_sessions()
        token = yield from core.app_token(expires, include_strokes_session_id=True)
        if not token.strokes_session_id:
            where = (
                f"token endpoint {safe_url(core.settings.token_url)}"
                if core.credentials.kind == "url" and not core.settings.has_keys
                else f"{core.settings.base_url}/v3/app-tokens"
            )
            raise NotAllowedError(
                f"The {where} answered without a strokes_session_id, so it cannot open strokes "
                "sessions. Fix: have it pass include_strokes_session_id through to Mathpix's "
                "v3/app-tokens (and return strokes_session_id), or use strokes() without a "
                "session."
            )
        return token


def _margin(lifetime: float) -> float:
    """Renew this long before expiry: 10 % of the lifetime, at least 5 s, at most half."""
    return min(max(5.0, 0.1 * lifetime), 0.5 * lifetime)


class _Session:
    """The I/O-free state of a strokes session: the drawing, the session token, renewal."""

    def __init__(
        self,
        core: ClientCore,
        *,
        expires: int,
        token: AppToken | None,
        options: dict[str, Any],
    ) -> None:
        self.core = core
        self.flows = StrokesFlows(core)
        self.expires = expires
        self.token = token
        self.options = options
        self.can_renew = self.flows.can_mint_sessions()
        self.ink_x: list[list[float]] = []
        self.ink_y: list[list[float]] = []
        self.sessions = 0 if token is None else 1
        self.deadline = token.expires_at if token is not None else 0.0
        self.result: OcrResult | None = None

    def _stale(self) -> bool:
        if self.token is None:
            return True
        if not self.can_renew:
            return False  # a given token: let Mathpix say when it is over
        # measured on the client's clock from the mint, so clock skew with Mathpix does not
        # matter; if Mathpix ends the session early anyway, add() reopens it
        return self.deadline - self.core.clock.time() <= _margin(float(self.expires))

    def _open(self) -> Flow[AppToken]:
        started = self.core.clock.time()
        token = yield from self.flows.mint_session(self.expires)
        self.token = token
        self.deadline = started + self.expires
        self.sessions += 1
        return token

    def _send(
        self, token: AppToken, xs: list[list[float]], ys: list[list[float]], resend: bool
    ) -> Flow[httpx.Response]:
        body = _body(xs, ys, self.options, token.strokes_session_id)
        core = self.core
        # The session's token authenticates its requests (the docs' way), except through a
        # team proxy: there the proxy's credential does (it adds the key), with the session id.
        if core.credentials.kind == "proxy":
            headers = core.credentials.key_headers("a strokes session")
        else:
            headers = token.headers
        return (
            yield from core.send(
                lambda: core._request("POST", "v3/strokes", headers, json=body),
                resend_after_upload=resend,
            )
        )

    def add(self, strokes: Any) -> Flow[OcrResult]:
        new_x, new_y = normalize_strokes(strokes)
        all_x, all_y = self.ink_x + new_x, self.ink_y + new_y
        fresh = self._stale()
        if fresh:
            token = yield from self._open()
            send_x, send_y = all_x, all_y  # a new session starts with the whole drawing
        else:
            assert self.token is not None
            token, send_x, send_y = self.token, new_x, new_y
        try:
            # Only the whole drawing is safe to resend: the session may already hold an
            # incremental request whose answer was lost, and would then hold it twice.
            response = yield from self._send(token, send_x, send_y, resend=fresh)
        except SubmissionUncertain as exc:
            if not self.can_renew:
                raise TransportError(
                    "The connection broke after new strokes were sent, so the session may hold "
                    "them already; they were not resent. Fix: clear() and send the drawing "
                    "again with a fresh token=."
                ) from exc
            token = yield from self._open()
            response = yield from self._send(token, all_x, all_y, resend=True)
        if self.core.is_token_expired(response):
            if not self.can_renew:
                raise TokenError(
                    "The strokes session is over (its app token expired or was revoked; "
                    "sessions last at most 300 s), and this client cannot open a new one. Fix: "
                    "pass a fresh token=, or create the client with keys, token_url= or "
                    "proxy_url= so the session renews itself.",
                    status_code=response.status_code,
                    error_id="unauthorized_token_request",
                )
            token = yield from self._open()
            response = yield from self._send(token, all_x, all_y, resend=True)
        source = _describe(all_x)
        body = self.core.parse_json(response, source=source, token_auth=True)
        self.ink_x, self.ink_y = all_x, all_y
        self.result = OcrResult(raw=body, source=source)
        return self.result

    def clear(self) -> None:
        self.ink_x, self.ink_y = [], []
        self.result = None
        if self.can_renew:
            self.token = None  # the old session holds the old ink: the next add opens anew

    def strokes(self) -> list[list[tuple[float, float]]]:
        return [
            list(zip(sx, sy, strict=True)) for sx, sy in zip(self.ink_x, self.ink_y, strict=True)
        ]

    def describe(self, kind: str) -> str:
        expires = "None" if self.token is None else f"{self.token.expires_at:.0f}"
        return f"{kind}(strokes={len(self.ink_x)}, sessions={self.sessions}, expires_at={expires})"


def _session_args(
    core: ClientCore,
    expires: int,
    token: AppToken | None,
    options: Mapping[str, Any],
    extra_options: Mapping[str, Any] | None,
) -> _Session:
    what = "strokes_session()"
    if isinstance(expires, bool) or not isinstance(expires, int) or expires < 1:
        raise ConfigurationError(f"{what}: expires must be whole seconds >= 1, got {expires!r}")
    if expires > MAX_SESSION_SECONDS:
        raise ConfigurationError(
            f"{what}: expires is {expires} s, but Mathpix caps strokes sessions at "
            f"{MAX_SESSION_SECONDS} s. Fix: pass expires<={MAX_SESSION_SECONDS} (the session "
            "renews itself before it runs out)."
        )
    if token is not None and (not isinstance(token, AppToken) or not token.strokes_session_id):
        raise ConfigurationError(
            f"{what}: token= must be an AppToken with a strokes_session_id (from "
            "app_token(include_strokes_session_id=True))."
        )
    flows = StrokesFlows(core)
    opts = flows.options(options, extra_options, what)
    if token is None and not flows.can_mint_sessions():
        raise flows.no_sessions()  # before anything is sent
    return _Session(core, expires=expires, token=token, options=opts)


class StrokesSession:
    """A live strokes session of a ``Mathpix`` client (``client.strokes_session()``).

    ``add(strokes)`` sends the new strokes and returns the reading of the whole drawing so
    far (an ``OcrResult``); ``clear()`` starts a new drawing (the next ``add`` opens a new
    session, billed anew); ``strokes`` is the drawing. Not for use from several threads at
    once (calls are serialised)."""

    def __init__(self, client: Mathpix, state: _Session) -> None:
        self._client = client
        self._state = state
        self._lock = threading.Lock()

    def add(self, strokes: StrokesInput) -> OcrResult:
        with self._lock:
            return self._client._run(self._state.add(strokes))

    def clear(self) -> None:
        with self._lock:
            self._state.clear()

    @property
    def strokes(self) -> list[list[tuple[float, float]]]:
        """The drawing so far: a list of strokes, each a list of (x, y) points."""
        return self._state.strokes()

    @property
    def result(self) -> OcrResult | None:
        """The latest reading (None before the first ``add``)."""
        return self._state.result

    @property
    def expires_at(self) -> float | None:
        """When the current session ends (epoch seconds), None before it opens."""
        return None if self._state.token is None else self._state.token.expires_at

    @property
    def sessions(self) -> int:
        """How many Mathpix sessions this drawing has used (renewals add one each)."""
        return self._state.sessions

    def close(self) -> None:
        self.clear()

    def __enter__(self) -> StrokesSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self._state.describe("StrokesSession")


class AsyncStrokesSession:
    """:class:`StrokesSession` for an ``AsyncMathpix`` (``await session.add(strokes)``)."""

    def __init__(self, client: AsyncMathpix, state: _Session) -> None:
        self._client = client
        self._state = state
        self._lock = anyio.Lock()

    async def add(self, strokes: StrokesInput) -> OcrResult:
        async with self._lock:
            return await self._client._run(self._state.add(strokes))

    def clear(self) -> None:
        self._state.clear()

    @property
    def strokes(self) -> list[list[tuple[float, float]]]:
        return self._state.strokes()

    @property
    def result(self) -> OcrResult | None:
        return self._state.result

    @property
    def expires_at(self) -> float | None:
        return None if self._state.token is None else self._state.token.expires_at

    @property
    def sessions(self) -> int:
        return self._state.sessions

    async def aclose(self) -> None:
        self.clear()

    async def __aenter__(self) -> AsyncStrokesSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return self._state.describe("AsyncStrokesSession")


def new_session(
    core: ClientCore,
    *,
    expires: int,
    token: AppToken | None,
    options: Mapping[str, Any],
    extra_options: Mapping[str, Any] | None,
) -> _Session:
    """The checked state of a new session (raises before anything is sent)."""
    return _session_args(core, expires, token, options, extra_options)
