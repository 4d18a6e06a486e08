"""Proxy mode of the team service: ``/v3/...`` forwarded to Mathpix with the service's key.

Callers authenticate exactly as for ``/token``; the key (``app_id``/``app_key``) is added
here and never leaves the service. Isolation between callers:

* every image job (``v3/text``, ``v3/latex``, ``v3/strokes``, ``v3/batch``) gets the tag
  ``mathpix-nb-caller:<via>:<name>``; a caller may not send tags with that prefix;
* every ``v3/ocr-results`` query gets that tag forced in (or, with ``pdf_id``, must name a PDF
  of the caller's); ``v3/pdf-results`` is built from the caller's own PDFs;
* PDFs, conversions, batches and app tokens created through the service are recorded
  (:mod:`._store`); an id of another caller is answered exactly like an unknown id;
* only the endpoint groups the operator allowed are reachable (``usage`` and ``account``
  are off by default).

Budgets: a per-caller token bucket and daily/monthly quotas of images and PDF pages, refused
as Mathpix refuses (429 ``http_max_requests``, ``limit_name``, ``Retry-After``). The upstream's
own answers, 429s and 5xx included, are passed through unchanged and never retried here.

Bodies stream both ways (``httpx`` with a pooled ``AsyncClient``); the size limit is checked
while the body streams. Image bodies (at most Mathpix's 5 MB) are read whole because the tag
is written into them; PDFs, downloads and ``v3/pdf/{id}/stream`` are never held.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ._pool import ShardedTransport
from ._ratelimit import RateLimiter, retry_after_header
from ._store import OverQuota, ProxyStore, Quotas, token_digest
from ._upstream import Upstream

if TYPE_CHECKING:
    from ._app import Caller

audit = logging.getLogger("mathpix_nb.tokens.audit")

CALLER_TAG_PREFIX = "mathpix-nb-caller:"
GROUPS = ("ocr", "results", "pdf", "converter", "batch", "app-tokens", "usage", "account")
DEFAULT_GROUPS = ("ocr", "results", "pdf", "converter", "batch", "app-tokens")
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_PDF_BYTES = 1024 * 1024 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
_MAX_SMALL_ANSWER = 4 * 1024 * 1024  # answers the proxy reads (ids, status objects)

# Headers passed on to Mathpix; everything else (Authorization, cookies, a caller's own
# app_id/app_key/app_token, X-Forwarded-*) stays here.
_FORWARD_REQUEST = ("content-type", "accept", "strokes_session_id", "user-agent")
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "set-cookie",
        "server",
        "date",
    }
)
_ID = r"[A-Za-z0-9_-]{1,128}"
_EXT = r"[A-Za-z0-9.]{1,24}"
_RID = re.compile(rb'"(?:request_id|pdf_id|conversion_id)"\s*:\s*"([A-Za-z0-9_.-]{1,128})"')


@dataclass(frozen=True)
class _Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    group: str
    kind: str
    name: str


def _route(methods: str, pattern: str, group: str, kind: str, name: str) -> _Route:
    return _Route(frozenset(methods.split()), re.compile(pattern), group, kind, name)


ROUTES = (
    _route("POST", r"v3/(?:text|latex|strokes)", "ocr", "image", ""),
    _route("POST", r"v3/batch", "batch", "batch_submit", "v3/batch"),
    _route("GET", rf"v3/batch/(?P<id>{_ID})", "batch", "own_batch", "v3/batch/{id}"),
    _route("GET", r"v3/ocr-results", "results", "ocr_results", "v3/ocr-results"),
    _route("POST", r"v3/pdf(?:-file)?", "pdf", "pdf_submit", ""),
    _route("GET", r"v3/pdf-results", "pdf", "pdf_results", "v3/pdf-results"),
    _route("GET", rf"v3/pdf/(?P<id>{_ID})/stream", "pdf", "own_pdf_stream", "v3/pdf/{id}/stream"),
    _route("GET DELETE", rf"v3/pdf/(?P<id>{_ID})", "pdf", "own_pdf_status", "v3/pdf/{id}"),
    _route("GET", rf"v3/pdf/(?P<id>{_ID})\.(?P<ext>{_EXT})", "pdf", "own_pdf", "v3/pdf/{id}.ext"),
    _route("POST", r"v3/converter", "converter", "converter_submit", "v3/converter"),
    _route(
        "GET DELETE",
        rf"v3/converter/(?P<id>{_ID})(?:\.(?P<ext>{_EXT}))?",
        "converter",
        "own_conversion",
        "v3/converter/{id}",
    ),
    _route("POST", r"v1/export/(?:docx|latex|pdf/html|pdf/latex)", "converter", "plain", ""),
    _route("POST", r"v3/app-tokens", "app-tokens", "token_submit", "v3/app-tokens"),
    _route(
        "GET DELETE",
        r"v3/app-tokens/(?P<token>[A-Za-z0-9_.-]{1,512})",
        "app-tokens",
        "own_token",
        "v3/app-tokens/{token}",
    ),
    _route("GET", r"v3/ocr-usage", "usage", "plain", "v3/ocr-usage"),
    _route("GET", r"v3/converter-results", "account", "plain", "v3/converter-results"),
)

_UNKNOWN = {
    "pdf": ("pdf_unknown_id", "PDF ID expired or isn't valid"),
    "conversion": ("cnv_unknown_id", "Conversion ID expired or isn't valid"),
    "batch": ("batch_unknown_id", "Batch ID expired or isn't valid"),
    "token": ("token_unknown", "App token not found"),
}


class BodyTooLarge(Exception):
    """The request body passed its limit while it streamed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


class _Refused(Exception):
    def __init__(self, response: Response, note: str) -> None:
        self.response = response
        self.note = note


def error(status: int, error_id: str, message: str, **extra: Any) -> JSONResponse:
    """Mathpix's envelope; ``extra`` goes into ``error_info`` (``limit_name``...)."""
    headers = {"Cache-Control": "no-store"}
    retry = extra.pop("retry_after", None)
    if retry is not None:
        headers["Retry-After"] = retry_after_header(float(retry))
    body = {"error": message, "error_info": {"id": error_id, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def caller_tag(caller: Caller) -> str:
    return f"{CALLER_TAG_PREFIX}{caller.via}:{caller.name}"


def caller_key(caller: Caller) -> str:
    return f"{caller.via}:{caller.name}"


def _reserved_tag_error() -> _Refused:
    return _Refused(
        error(
            400,
            "opts_value_out_of_range",
            f"tags starting with {CALLER_TAG_PREFIX!r} are set by the team proxy; "
            "remove them from your request",
            name="tags",
        ),
        "reserved tag",
    )


def add_caller_tag(options: dict[str, Any], tag: str) -> dict[str, Any]:
    """``options`` with ``tag`` appended to its ``tags`` (refusing reserved tags)."""
    tags = options.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Refused(
            error(400, "opts_value_out_of_range", "tags must be a list of strings", name="tags"),
            "bad tags",
        )
    if any(t.startswith(CALLER_TAG_PREFIX) for t in tags):
        raise _reserved_tag_error()
    return {**options, "tags": [*tags, tag]}


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise _Refused(error(400, "json_syntax", f"{where} is not valid JSON"), "json") from None
    if not isinstance(value, dict):
        raise _Refused(error(400, "json_syntax", f"{where} must be a JSON object"), "json")
    return value


def rewrite_multipart(body: bytes, boundary: bytes, tag: str) -> bytes:
    """Put ``tag`` into the ``options_json`` part of a multipart body (adding the part)."""
    delim = b"--" + boundary
    start = body.find(delim)
    if start < 0:
        raise _Refused(error(400, "json_syntax", "malformed multipart body"), "multipart")
    head, rest = body[:start], body[start + len(delim) :]
    segments = rest.split(b"\r\n" + delim)
    found = False
    for i, seg in enumerate(segments):
        if not seg.startswith(b"\r\n"):
            continue  # the closing "--"
        headers, sep, content = seg[2:].partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = headers.lower()
        if b'name="options_json"' in disposition or b"name=options_json" in disposition:
            options = add_caller_tag(_json_object(content, "options_json"), tag)
            segments[i] = b"\r\n" + headers + b"\r\n\r\n" + json.dumps(options).encode()
            found = True
    if not found:
        part = (
            b'\r\nContent-Disposition: form-data; name="options_json"\r\n\r\n'
            + json.dumps({"tags": [tag]}).encode()
        )
        segments.insert(max(0, len(segments) - 1), part)
    return head + delim + (b"\r\n" + delim).join(segments)


def _boundary(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).encode("latin-1") if match else None


def _iso_seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Refused(
            error(
                400,
                "opts_value_out_of_range",
                f"from_date/to_date must be ISO dates such as 2026-12-01T00:00:00Z, got "
                f"{value[:40]!r}",
            ),
            "bad date",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed.timestamp()


def _int_param(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise _Refused(
            error(400, "opts_value_out_of_range", f"{name} must be 1..{top}, got {raw[:20]!r}"),
            "bad paging",
        )
    return int(raw)


@dataclass
class _Exchange:
    """What the audit line reports about one request."""

    caller: str = "-"
    method: str = ""
    endpoint: str = ""
    item: str = ""
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    upstream_request_id: str = ""
    note: str = ""
    started: float = field(default_factory=time.perf_counter)

    def log(self) -> None:
        audit.info(
            "proxy caller=%s method=%s endpoint=%s%s status=%d bytes_in=%d bytes_out=%d "
            "duration_ms=%.1f upstream_request_id=%s%s",
            self.caller,
            self.method,
            self.endpoint,
            f" id={self.item}" if self.item else "",
            self.status,
            self.bytes_in,
            self.bytes_out,
            (time.perf_counter() - self.started) * 1000,
            self.upstream_request_id or "-",
            f" note={self.note}" if self.note else "",
        )


class Proxy:
    """The forwarding half of the service (one per app); ``handle`` is its Starlette endpoint."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        authenticate: Callable[[Request], Any],
        groups: Collection[str] = DEFAULT_GROUPS,
        limiter: RateLimiter,
        quotas: Quotas,
        store: ProxyStore,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        max_pdf_bytes: int = MAX_PDF_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout: float = 120.0,
        max_connections: int = 256,
        prefix: str = "",
    ) -> None:
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            from .._exceptions import ConfigurationError

            raise ConfigurationError(
                f"unknown proxy endpoint group(s) {unknown}; choose from {', '.join(GROUPS)}"
            )
        self.upstream = upstream
        self._authenticate = authenticate
        self.groups = frozenset(groups)
        self.limiter = limiter
        self.quotas = quotas
        self.store = store
        self.max_image_bytes = max_image_bytes
        self.max_pdf_bytes = max_pdf_bytes
        self.max_body_bytes = max_body_bytes
        self._timeout = httpx.Timeout(10.0, read=read_timeout, write=60.0, pool=30.0)
        self._max_connections = max_connections
        self._http: httpx.AsyncClient | None = None
        self.prefix = prefix
        self.forwarded = 0

    def __repr__(self) -> str:
        groups = sorted(self.groups)
        return f"Proxy(upstream={self.upstream!r}, groups={groups}, store={self.store!r})"

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # several small pools, not one of max_connections: see _pool.py
            self._http = httpx.AsyncClient(
                timeout=self._timeout,
                transport=ShardedTransport(max_connections=self._max_connections),
                follow_redirects=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- the endpoint -------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        ex = _Exchange(method=request.method)
        path = request.url.path[len(self.prefix) :].strip("/")
        ex.endpoint = path
        try:
            response = await self._handle(request, path, ex)
        except _Refused as refused:
            response, ex.note = refused.response, refused.note
        if not isinstance(response, StreamingResponse):
            ex.status = response.status_code
            ex.bytes_out = len(response.body)
            ex.log()
        return response

    async def _handle(self, request: Request, path: str, ex: _Exchange) -> Response:
        from ._hub import HubUnavailable

        try:
            caller = await self._authenticate(request)
        except HubUnavailable:
            message = "cannot verify the credential with JupyterHub now"
            return error(503, "sys_exception", message, retry_after=5)
        if caller is None:
            ex.note = "unauthenticated"
            response = error(
                401,
                "http_unauthorized",
                "Invalid credentials: send Authorization: Bearer <your team-service secret>",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="mathpix-token-service"'
            return response
        ex.caller = caller_key(caller)
        route, match = self._match(request.method, path)
        if route is None or match is None:
            return error(404, "http_not_found", f"not found: {path[:80]!r} is not a Mathpix route")
        ex.endpoint = route.name or path
        ex.item = (match.groupdict().get("id") or "") if route.kind.startswith("own_") else ""
        if request.method not in route.methods:
            allow = ", ".join(sorted(route.methods))
            response = error(405, "http_method_not_allowed", f"method not allowed; use {allow}")
            response.headers["Allow"] = allow
            return response
        if route.group not in self.groups:
            ex.note = f"group {route.group} not allowed"
            return error(
                403,
                "http_forbidden",
                f"{route.name or path} is not enabled on this team service (endpoint group "
                f"{route.group!r}); ask its operator",
            )
        wait = self.limiter.acquire(ex.caller)
        if wait > 0:
            ex.note = "rate limited"
            return error(
                429,
                "http_max_requests",
                "Too many requests",
                limit_name="requests_per_minute",
                limit_value=self.limiter.per_minute,
                retry_after=wait,
            )
        return await self._dispatch(request, caller, route, match, path, ex)

    def _match(self, method: str, path: str) -> tuple[_Route | None, re.Match[str] | None]:
        fallback: tuple[_Route | None, re.Match[str] | None] = (None, None)
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None:
                if method in route.methods:
                    return route, match
                fallback = (route, match)
        return fallback

    # -- per kind ---------------------------------------------------------------------
    async def _dispatch(
        self,
        request: Request,
        caller: Caller,
        route: _Route,
        match: re.Match[str],
        path: str,
        ex: _Exchange,
    ) -> Response:
        key = caller_key(caller)
        kind = route.kind
        query = request.url.query
        if kind == "image":
            body = await self._read(request, self.max_image_bytes, ex)
            body, ctype = self._tag_body(request, body, caller_tag(caller))
            return await self._metered(request, path, query, body, ctype, key, 1, ex)
        if kind == "batch_submit":
            options = _json_object(await self._read(request, self.max_body_bytes, ex), "the body")
            options = add_caller_tag(options, caller_tag(caller))
            urls = options.get("urls")
            count = len(urls) if isinstance(urls, dict) else 1
            body = json.dumps(options).encode()
            return await self._metered(
                request, path, query, body, "application/json", key, count, ex, record="batch"
            )
        if kind == "ocr_results":
            return await self._ocr_results(request, caller, path, ex)
        if kind == "pdf_results":
            return await self._pdf_results(request, key, ex)
        if kind == "pdf_submit":
            over = self.store.reserve(key, "page", 0, self.quotas)
            if over is not None:
                return self._over_quota(over, ex)
            stream = self._stream_body(request, self.max_pdf_bytes, ex)
            return await self._forward_small(request, path, query, stream, key, ex, record="pdf")
        if kind in ("converter_submit", "token_submit"):
            body = await self._read(request, self.max_body_bytes, ex)
            record = "conversion" if kind == "converter_submit" else "token"
            return await self._forward_small(request, path, query, body, key, ex, record=record)
        if kind.startswith("own_"):
            return await self._owned(request, route, match, path, key, ex)
        # plain (export, and the account groups when allowed)
        stream = self._stream_body(request, self.max_body_bytes, ex)
        return await self._forward(request, path, query, stream, ex)

    async def _owned(
        self,
        request: Request,
        route: _Route,
        match: re.Match[str],
        path: str,
        key: str,
        ex: _Exchange,
    ) -> Response:
        groups = match.groupdict()
        status_get = request.method == "GET" and not groups.get("ext")
        kinds: tuple[str, ...]
        if route.kind == "own_token":
            kinds, item = ("token",), token_digest(groups["token"])
        elif route.kind == "own_batch":
            kinds, item = ("batch",), groups["id"]
        elif route.kind == "own_conversion":
            kinds, item = ("conversion", "pdf"), groups["id"]
        else:
            kinds, item = ("pdf",), groups["id"]
            status_get = status_get and route.kind == "own_pdf_status"
        if not self.store.owns(key, kinds, item):
            error_id, message = _UNKNOWN[kinds[0]]
            ex.note = "not the caller's"
            return error(200 if status_get else 404, error_id, message)
        if route.kind == "own_pdf_status" and request.method == "GET":
            return await self._forward_small(
                request, path, request.url.query, None, key, ex, pages_of=item
            )
        return await self._forward(request, path, request.url.query, None, ex)

    async def _ocr_results(
        self, request: Request, caller: Caller, path: str, ex: _Exchange
    ) -> Response:
        items = request.query_params.multi_items()
        if any(k == "tags" and v.startswith(CALLER_TAG_PREFIX) for k, v in items):
            raise _reserved_tag_error()
        pdf_id = request.query_params.get("pdf_id")
        if pdf_id is not None:
            if not self.store.owns(caller_key(caller), ("pdf",), pdf_id):
                ex.note = "not the caller's"
                return JSONResponse({"ocr_results": []}, headers={"Cache-Control": "no-store"})
        else:
            items = [*items, ("tags", caller_tag(caller))]
        return await self._forward(request, path, urlencode(items), None, ex)

    async def _pdf_results(self, request: Request, key: str, ex: _Exchange) -> Response:
        params = request.query_params
        page = _int_param(params, "page", 1, 1000)
        per_page = _int_param(params, "per_page", 100, 100)
        pdf_id = params.get("pdf_id")
        if pdf_id is not None:
            ids = [pdf_id] if self.store.owns(key, ("pdf",), pdf_id) else []
        else:
            ids = self.store.owned_ids(
                key,
                "pdf",
                since=_iso_seconds(params.get("from_date"), 0.0),
                until=_iso_seconds(params.get("to_date"), float("inf")),
                offset=(page - 1) * per_page,
                limit=per_page,
            )
        http = self.http()
        gate = asyncio.Semaphore(16)

        async def one(item: str) -> httpx.Response:
            async with gate:
                return await http.get(
                    f"{self.upstream.base_url}/v3/pdf-results",
                    params={"pdf_id": item},
                    headers=self._key_headers(),
                )

        try:
            answers = await asyncio.gather(*(one(i) for i in ids))
        except httpx.HTTPError as exc:
            return self._transport_error(exc, ex)
        rows: list[Any] = []
        for item, answer in zip(ids, answers, strict=True):
            if answer.status_code != 200:
                return self._plain_copy(answer, ex)
            try:
                found = answer.json().get("pdfs", [])
            except (ValueError, AttributeError):
                found = []
            for row in found if isinstance(found, list) else []:
                if isinstance(row, dict) and row.get("id") == item:
                    rows.append(row)
                    self._charge(key, item, row.get("num_pages"))
        return JSONResponse({"pdfs": rows}, headers={"Cache-Control": "no-store"})

    # -- bodies -----------------------------------------------------------------------
    def _declared_too_large(self, request: Request, limit: int) -> None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _Refused(self._too_large(limit), "body over limit (declared)")

    @staticmethod
    def _too_large(limit: int) -> JSONResponse:
        return error(
            413,
            "sys_request_too_large",
            f"request body over this service's limit of {limit} bytes",
            limit_value=limit,
        )

    async def _read(self, request: Request, limit: int, ex: _Exchange) -> bytes:
        self._declared_too_large(request, limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(self._too_large(limit), "body over limit")
            chunks.append(chunk)
        ex.bytes_in = size
        return b"".join(chunks)

    def _stream_body(self, request: Request, limit: int, ex: _Exchange) -> AsyncIterator[bytes]:
        self._declared_too_large(request, limit)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                ex.bytes_in += len(chunk)
                if ex.bytes_in > limit:
                    raise BodyTooLarge(limit)
                if chunk:
                    yield chunk

        return body()

    def _tag_body(self, request: Request, body: bytes, tag: str) -> tuple[bytes, str]:
        ctype = request.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/form-data"):
            boundary = _boundary(ctype)
            if boundary is None:
                raise _Refused(error(400, "json_syntax", "multipart body without boundary"), "mp")
            return rewrite_multipart(body, boundary, tag), ctype
        options = add_caller_tag(_json_object(body, "the body"), tag)
        return json.dumps(options).encode(), "application/json"

    # -- upstream ---------------------------------------------------------------------
    def _key_headers(self) -> dict[str, str]:
        headers = {"app_key": self.upstream.app_key}
        if self.upstream.app_id:
            headers["app_id"] = self.upstream.app_id
        return headers

    def _request_headers(self, request: Request, content_type: str | None) -> dict[str, str]:
        headers = {k: request.headers[k] for k in _FORWARD_REQUEST if k in request.headers}
        if content_type is not None:
            headers["content-type"] = content_type
        headers["accept-encoding"] = request.headers.get("accept-encoding", "identity")
        headers.update(self._key_headers())
        return headers

    def _over_quota(self, over: OverQuota, ex: _Exchange) -> Response:
        ex.note = f"quota {over.limit_name}"
        return error(
            429,
            "http_max_requests",
            "Too many requests",
            limit_name=over.limit_name,
            limit_value=over.limit_value,
            count=over.count,
            retry_after=over.retry_after,
        )

    def _transport_error(self, exc: Exception, ex: _Exchange) -> Response:
        if isinstance(exc, BodyTooLarge):
            ex.note = "body over limit"
            return self._too_large(exc.limit)
        ex.note = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return error(504, "sys_exception", "Mathpix did not answer in time")
        return error(502, "sys_exception", f"cannot reach Mathpix ({type(exc).__name__})")

    async def _send(
        self,
        request: Request,
        path: str,
        query: str,
        content: bytes | AsyncIterator[bytes] | None,
        content_type: str | None = None,
    ) -> httpx.Response:
        url = f"{self.upstream.base_url}/{path}" + (f"?{query}" if query else "")
        headers = self._request_headers(request, content_type)
        if isinstance(content, AsyncIterator) and "content-length" in request.headers:
            headers["content-length"] = request.headers["content-length"]
        http = self.http()
        upstream_request = http.build_request(request.method, url, headers=headers, content=content)
        self.forwarded += 1
        return await http.send(upstream_request, stream=True)

    def _response_headers(self, answer: httpx.Response, *, streamed: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in answer.headers.items():
            lower = name.lower()
            if lower in _DROP_RESPONSE or lower.startswith("access-control-"):
                continue
            if not streamed and lower in ("content-length", "content-encoding"):
                continue
            out[lower] = value
        out.setdefault("cache-control", "no-store")
        return out

    def _plain_copy(self, answer: httpx.Response, ex: _Exchange) -> Response:
        ex.upstream_request_id = answer.headers.get("x-request-id", ex.upstream_request_id)
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers=self._response_headers(answer, streamed=False),
        )

    async def _forward(
        self,
        request: Request,
        path: str,
        query: str,
        content: bytes | AsyncIterator[bytes] | None,
        ex: _Exchange,
        content_type: str | None = None,
        on_status: Callable[[int], None] | None = None,
    ) -> Response:
        """Send upstream and stream the answer back as it arrives (SSE included)."""
        try:
            answer = await self._send(request, path, query, content, content_type)
        except (httpx.HTTPError, BodyTooLarge) as exc:
            if on_status is not None:
                on_status(0)
            return self._transport_error(exc, ex)
        if on_status is not None:
            on_status(answer.status_code)
        ex.status = answer.status_code
        ex.upstream_request_id = answer.headers.get("x-request-id", "")
        headers = self._response_headers(answer, streamed=True)
        if "event-stream" in headers.get("content-type", "") or path.endswith("/stream"):
            headers["x-accel-buffering"] = "no"
        sniff = "json" in headers.get("content-type", "") and not ex.upstream_request_id

        async def relay() -> AsyncIterator[bytes]:
            tail = b""
            try:
                async for chunk in answer.aiter_raw():
                    ex.bytes_out += len(chunk)
                    if sniff and not ex.upstream_request_id:
                        found = _RID.search(tail + chunk)
                        if found:
                            ex.upstream_request_id = found.group(1).decode()
                        tail = chunk[-160:]
                    yield chunk
            except httpx.HTTPError as exc:
                ex.note = f"upstream broke off ({type(exc).__name__})"
            finally:
                await answer.aclose()
                ex.log()

        return StreamingResponse(relay(), status_code=answer.status_code, headers=headers)

    async def _forward_small(
        self,
        request: Request,
        path: str,
        query: str,
        content: bytes | AsyncIterator[bytes] | None,
        key: str,
        ex: _Exchange,
        *,
        record: str | None = None,
        pages_of: str | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Send upstream, read the (small JSON) answer, record the id it creates."""
        try:
            answer = await self._send(request, path, query, content, content_type)
            try:
                data = b""
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > _MAX_SMALL_ANSWER:
                        break
            finally:
                await answer.aclose()
        except (httpx.HTTPError, BodyTooLarge) as exc:
            return self._transport_error(exc, ex)
        body: Any = None
        if len(data) <= _MAX_SMALL_ANSWER and "json" in answer.headers.get("content-type", ""):
            try:
                body = json.loads(data)
            except ValueError:
                body = None
        if isinstance(body, dict) and answer.status_code == 200:
            if record == "pdf" and isinstance(body.get("pdf_id"), str):
                self.store.record(key, "pdf", body["pdf_id"])
                ex.item = body["pdf_id"]
            elif record == "conversion" and isinstance(body.get("conversion_id"), str):
                self.store.record(key, "conversion", body["conversion_id"])
                ex.item = body["conversion_id"]
            elif record == "batch" and isinstance(body.get("batch_id"), str | int):
                self.store.record(key, "batch", str(body["batch_id"]))
                ex.item = str(body["batch_id"])
            elif record == "token" and isinstance(body.get("app_token"), str):
                self.store.record(key, "token", token_digest(body["app_token"]))
            if pages_of is not None:
                self._charge(key, pages_of, body.get("num_pages"))
        ex.upstream_request_id = answer.headers.get("x-request-id", "")
        if not ex.upstream_request_id and isinstance(body, dict):
            rid = body.get("request_id") or body.get("pdf_id") or body.get("conversion_id")
            ex.upstream_request_id = str(rid) if isinstance(rid, str | int) else ""
        return Response(
            data,
            status_code=answer.status_code,
            headers=self._response_headers(answer, streamed=False),
        )

    async def _metered(
        self,
        request: Request,
        path: str,
        query: str,
        body: bytes,
        content_type: str,
        key: str,
        count: int,
        ex: _Exchange,
        *,
        record: str | None = None,
    ) -> Response:
        """Forward an image job: reserve ``count`` images first, give them back on failure."""
        over = self.store.reserve(key, "image", count, self.quotas)
        if over is not None:
            return self._over_quota(over, ex)
        if record is not None:
            response = await self._forward_small(
                request, path, query, body, key, ex, record=record, content_type=content_type
            )
            if response.status_code >= 400:
                self.store.refund(key, "image", count)
            return response

        def settle(status: int) -> None:
            if status == 0 or status >= 400:
                self.store.refund(key, "image", count)

        return await self._forward(
            request, path, query, body, ex, content_type=content_type, on_status=settle
        )

    def _charge(self, key: str, pdf_id: str, pages: object) -> None:
        counted = isinstance(pages, int) and not isinstance(pages, bool) and pages > 0
        if counted and self.store.charge_pages(key, pdf_id, int(pages)):  # type: ignore[call-overload]
            audit.info("charged pages caller=%s id=%s pages=%d", key, pdf_id, pages)
