"""``mathpix-nb serve``: run the local Mathpix-compatible server until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from ._config import Faults


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mathpix-nb serve",
        description="Serve the Mathpix v3 API locally (echo or offline OCR engine).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port of the first region; further regions use the next ports "
        "(default 8000; 0 = any free port)",
    )
    p.add_argument(
        "--engine",
        choices=("echo", "offline"),
        default="echo",
        help="echo: deterministic, names the image; offline: rapidocr text OCR",
    )
    p.add_argument(
        "--region",
        action="append",
        dest="regions",
        metavar="REGION",
        help="a region to serve (repeatable; default: global)",
    )
    p.add_argument("--app-id", default=None, help="app_id to accept (default local-app)")
    p.add_argument("--app-key", default=None, help="app_key to accept (default: random, printed)")
    p.add_argument("--latency-base", type=float, default=0.0, help="seconds added per request")
    p.add_argument("--latency-per-kb", type=float, default=0.0, help="seconds per KB uploaded")
    p.add_argument("--max-concurrency", type=int, default=None, help="requests processed at once")
    p.add_argument("--rate-limit", type=int, default=None, help="requests per minute (429 above)")
    p.add_argument("--monthly-quota", type=int, default=None, help="images per month (429 above)")
    p.add_argument(
        "--async-delay",
        type=float,
        default=0.0,
        help="seconds before async results show in ocr-results",
    )
    p.add_argument(
        "--expired-token-mode",
        choices=("200", "401"),
        default="200",
        help="answer for expired app tokens (default 200 unauthorized_token_request)",
    )
    p.add_argument("--fault-5xx", type=float, default=0.0, help="rate of injected 5xx answers")
    p.add_argument("--fault-drop", type=float, default=0.0, help="rate of dropped connections")
    p.add_argument(
        "--fault-sys-exception",
        type=float,
        default=0.0,
        help="rate of HTTP 200 sys_exception answers",
    )
    p.add_argument("--fault-slow", type=float, default=0.0, help="rate of slow answers")
    p.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a slow answer")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    p.add_argument(
        "--retry-after",
        action="store_true",
        help="send Retry-After with 429 answers (Mathpix does not document it)",
    )
    p.add_argument(
        "--token-min-expires",
        type=float,
        default=30,
        help="shortest app-token lifetime accepted, in seconds (default 30)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="an origin browser pages may call from (repeatable; default: any, '*')",
    )
    p.add_argument(
        "--app-key-only",
        choices=("accept", "docs", "everywhere"),
        default="accept",
        help="where app_key without app_id authenticates (default accept: the document "
        "routes Mathpix's CLI calls that way, plus the docs' app_key-only routes)",
    )
    p.add_argument(
        "--converter-backend",
        choices=("auto", "builtin"),
        default="auto",
        help="auto: pandoc / a TeX engine when installed, else our writers (default)",
    )
    p.add_argument(
        "--max-stored-results",
        type=int,
        default=100_000,
        help="OCR results kept per region, oldest dropped first (default 100000)",
    )
    p.add_argument(
        "--max-log-records",
        type=int,
        default=100_000,
        help="request-log records kept (default 100000)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, start the server, print its URLs and credentials, serve until Ctrl-C."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from ._local import LocalServer

    try:
        faults = None
        if args.fault_5xx or args.fault_drop or args.fault_sys_exception or args.fault_slow:
            faults = Faults(
                http_5xx=args.fault_5xx,
                drop=args.fault_drop,
                sys_exception=args.fault_sys_exception,
                slow=args.fault_slow,
                slow_seconds=args.slow_seconds,
                seed=args.fault_seed,
            )
        server = LocalServer(
            engine=args.engine,
            regions=tuple(args.regions or ("global",)),
            app_id=args.app_id,
            app_key=args.app_key,
            host=args.host,
            port=args.port,
            latency_base=args.latency_base,
            latency_per_kb=args.latency_per_kb,
            max_concurrency=args.max_concurrency,
            rate_limit_per_minute=args.rate_limit,
            monthly_quota=args.monthly_quota,
            async_delay=args.async_delay,
            expired_token_mode=args.expired_token_mode,
            faults=faults,
            retry_after_header=args.retry_after,
            token_min_expires=args.token_min_expires,
            cors_allow_origins=tuple(args.cors_origins or ("*",)),
            app_key_only=args.app_key_only,
            converter_backend=args.converter_backend,
            max_stored_results=args.max_stored_results,
            max_log_records=args.max_log_records,
        )
        server.start()
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        print(f"mathpix-nb serve: {exc}", file=sys.stderr)
        return 2
    with server:
        print(f"mathpix-nb local Mathpix API ({args.engine} engine)")
        for region, url in server.urls.items():
            print(f"  {region:<8}{url}")
        print(f"  app_id  {server.app_id}")
        print(f"  app_key {server.app_key}")
        print(
            f"Use: export MATHPIX_URL={server.url} MATHPIX_APP_ID={server.app_id} "
            f"MATHPIX_APP_KEY={server.app_key}"
        )
        print("Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0
