"""A local Mathpix-compatible API server: the real HTTP peer for tests, benchmarks and
offline use (extra: ``pip install 'mathpix_nb[server]'``; the ``offline`` engine needs
``mathpix_nb[offline]``).

    from mathpix_nb.server import LocalServer, Faults

    with LocalServer(engine="echo", regions=("global", "eu"), latency_base=0.05,
                     faults=Faults(http_5xx=0.1, seed=7)) as server:
        server.url, server.urls, server.app_id, server.app_key, server.log

From a shell: ``mathpix-nb serve --port 8000 --engine offline --region global --region eu``.

Endpoints (Mathpix v3, see ``../shared/mathpix-api.md`` and ``docs/server.md``):
    ``POST /v3/text`` and ``POST /v3/latex`` (multipart ``file`` + ``options_json``, or JSON
    ``src`` URL / ``data:`` URI); ``GET /v3/ocr-results`` (indexed by tag, PDF, app id and
    date: O(page)); ``POST/GET/DELETE /v3/app-tokens``; ``POST /v3/pdf`` and
    ``POST /v3/pdf-file``, ``GET/DELETE /v3/pdf/{id}``, ``GET /v3/pdf/{id}.{ext}`` (``mmd``,
    ``lines.json`` and every conversion, made on demand when not requested),
    ``GET /v3/pdf/{id}/stream`` (SSE for ``Accept: text/event-stream``, else one JSON object
    per line; needs ``"streaming": true``); ``POST /v3/converter``,
    ``GET/DELETE /v3/converter/{id}``, ``GET /v3/converter/{id}.{ext}``,
    ``GET /v3/converter-results``; ``POST /v1/export/{docx,latex,pdf/html,pdf/latex}``;
    ``GET /v3/pdf-results``; ``POST /v3/batch``, ``GET /v3/batch/{id}``; ``POST /v3/strokes``
    (live sessions with ``strokes_session_id``); ``GET /v3/ocr-usage`` (counts per usage
    type: image, image-async, pdf-page, strokes, strokes-session; account-wide).
    Every answer carries CORS headers and ``OPTIONS`` preflights are answered; unknown
    routes answer a JSON 404 ``http_not_found``, wrong methods a JSON 405.
    Local extras (no auth): ``GET /_local/health``, ``GET /_local/files/{name}`` (files
    published with ``server.host_file(...)``) and ``POST /_local/inbox/{name}`` (a callback
    sink: ``server.inbox_url()`` / ``server.inbox()``).
    The Files API ``/files/v1/*`` (options ``bucket_root``, ``files_jobs_response``,
    ``webhook_allow_http``, ``file_faults``, ``files_state_dir``...): see docs/files-api.md.

Behaviour models (``LocalServer(...)`` keywords, changeable with ``server.configure``):
    ``latency_base`` + ``latency_per_kb`` (seconds per KB of image received) are slept
    under ``max_concurrency`` (requests beyond the cap queue, FIFO);
    ``rate_limit_per_minute`` -> 429 ``http_max_requests`` (``limit_name``
    ``"requests_per_minute"``, ``limit_value``, ``count``) on POST text/latex/pdf/batch,
    with a ``Retry-After`` header when ``retry_after_header=True``; ``monthly_quota`` (images)
    -> 429 with ``limit_name`` ``"image_monthly_limit"``; ``monthly_page_quota`` (PDF pages)
    -> 429 ``"page_monthly_limit"``; ``faults=Faults(...)`` (5xx, ``sys_exception`` bodies,
    dropped connections, slow replies, token expiry; seeded); size limits (``max_body_bytes``
    5 MB, ``max_strokes_bytes``, ``max_converter_bytes``, ``max_pdf_bytes``,
    ``max_base64_bytes`` 2 MB; bodies are streamed and reading stops there) ->
    ``sys_request_too_large``; state bounds ``max_log_records``, ``max_stored_results``,
    ``max_stored_documents``, ``max_inbox_messages``; ``async_delay``
    before an async result shows in ``ocr-results``; ``pdf_step_delay`` between PDF states.

Open questions of the reference, and what this server does (option, default first):
    * Expired/invalid app token on v3/text|latex: ``expired_token_mode="200"`` answers
      HTTP 200 ``unauthorized_token_request`` (current docs); ``"401"`` answers 401
      ``http_unauthorized`` (old docs).
    * ``app_token_expires_at`` units/type: ``token_expires_format="ms"`` (integer epoch ms,
      as the docs' example and mpxpy); ``"ms_string"`` (OLD docs) or ``"seconds"``.
    * App-token lifetimes: ``expires`` must lie in ``[token_min_expires, token_max_expires]``
      (default 30..43200 s; 30..300 with ``include_strokes_session_id``); tests lower
      ``token_min_expires`` to mint tokens that expire within seconds.
    * Immediate body of ``async: true``: ``{"request_id": ...}`` only (HTTP 200).
    * ``ocr-results`` ordering: ``results_order="newest"`` (as the docs' example); or
      ``"oldest"``. ``page`` >= 1, ``per_page`` 1..1000 (default 1 / 100); no total field.
      ``results_page_cap=N`` cuts a larger ``per_page`` to N without saying so (whether the
      real API caps below 1000, and how, is not documented).
    * ``include_null_results``: rows whose ``result`` is still null (async requests being
      processed, or not yet visible because of ``async_delay``) are listed only with
      ``include_null_results=true``. Failed requests are stored with their error body as
      ``result`` so a poller sees the failure.
    * ``request_args`` echoes the request's options except ``src``.
    * Boolean query parameters accept ``true/True/1`` and ``false/False/0``.
    * ``batch_id`` type: ``batch_id_type="int"`` (current docs) or ``"str"`` (OLD docs).
    * ``Retry-After`` on 429: absent unless ``retry_after_header=True`` (not documented).
    * PDF download before it is ready: ``pdf_not_ready_status=404`` (body: the status
      object, header ``Retry-After: 1``); or 202. A format not requested in
      ``conversion_formats`` is made on demand (``on_demand_conversions=False``: 404
      ``file_missing``); one still converting is waited for ``conversion_wait`` seconds.
      Every format is a real file (our writers, or pandoc / a TeX engine when installed
      with ``converter_backend="auto"``; ``X-Mathpix-Converter`` names which).
    * What an app token may not do: async (200 ``unauthorized_token_request``), batch
      (200 ``unauthorized_token_request``), PDF / ``ocr-results`` / ``pdf-results`` /
      app-token endpoints (401 ``http_unauthorized``: they need ``app_key``).
    * ``app_key``-only endpoints (``app-tokens``, ``ocr-results``, ``pdf-results``) also accept
      ``app_id`` + ``app_key`` (mpxpy sends both). The document routes (pdf, pdf-file,
      status, downloads, stream, converter, export) and ocr-usage accept ``app_key`` alone
      too, as Mathpix's CLI and docs examples send it (``app_key_only="accept"``; ``"docs"``
      restores the docs' table, ``"everywhere"`` also opens the image routes and batch).
    * Region names: ``"global"``, ``"eu"`` (alias ``"eu-central-1"``); any other name works too.
      App tokens, rate limits and monthly usage are account-wide (shared by all regions).
    * Invalid ``region`` option: ``opts_value_out_of_range`` with ``name: "region"``.
    * Unreadable PDF: status ``error`` with ``error_info.id`` ``pdf_decode_error`` (encrypted:
      ``pdf_encrypted``). ``v3/latex`` defaults to ``formats=["latex_normal"]``.
    * Batch ``callback``: once every image is done, one best-effort POST of
      ``{"reply": {"batch_id", **reply}, "result": {key: body}, **body}`` with the callback's
      ``headers`` (third-party description; Mathpix documents no payload). Callbacks of
      ``v3/text`` async requests are validated but not delivered (payload undocumented).
    * Injected 5xx answers carry a small HTML body, as a gateway would; dropped connections
      close the socket without any response (clients see ``RemoteProtocolError``).

The request log (``server.log``: ``RequestRecord`` with endpoint, method, region,
bytes_received, auth_mode, tags, status_code, error_id, request_id, image_sha256, fault)
never holds credentials, tokens or image bytes.
"""

from __future__ import annotations

from ._config import Faults, ServerConfig
from ._engines import EchoEngine, Engine, EngineError, OfflineEngine
from ._files_config import FileFaults
from ._local import LocalServer
from ._store import RequestRecord

__all__ = [
    "EchoEngine",
    "Engine",
    "EngineError",
    "Faults",
    "FileFaults",
    "LocalServer",
    "OfflineEngine",
    "RequestRecord",
    "ServerConfig",
]
