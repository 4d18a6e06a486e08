"""``mathpix-nb token-server``: run the app-token service, or manage its callers.

mathpix-nb token-server [--host H] [--port P] [--callers-file F] [--jupyterhub] [--region eu]
                        [--proxy [--state-db F] [--images-per-day N] ...] [--cors-origin O]
mathpix-nb token-server new-caller NAME [--callers-file F]   # prints a new secret once
mathpix-nb token-server hash < secret.txt                    # prints sha256:<hex>
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .._exceptions import ConfigurationError
from ._callers import hash_secret, load_callers_file, new_secret

DEFAULT_PORT = 8765


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mathpix-nb token-server",
        description="Hand short-lived Mathpix app tokens to authenticated callers. The key is "
        "read from MATHPIX_APP_KEY / MATHPIX_APP_ID. Also: `token-server new-caller NAME` and "
        "`token-server hash`.",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1; put a TLS proxy in front)")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--callers-file", help="file of 'NAME sha256:<hex>' lines (bearer callers)")
    p.add_argument(
        "--jupyterhub",
        action="store_true",
        help="accept JupyterHub API tokens, checked against the hub "
        "(hub URL from JUPYTERHUB_API_URL or --hub-api-url)",
    )
    p.add_argument("--hub-api-url", help="e.g. http://127.0.0.1:8081/hub/api")
    p.add_argument("--hub-users", help="comma-separated hub users allowed (default: all)")
    p.add_argument("--hub-groups", help="comma-separated hub groups allowed (default: all)")
    p.add_argument("--region", help="global | eu (eu implies EU-only); env MATHPIX_REGION")
    p.add_argument("--base-url", help="upstream URL (env MATHPIX_URL); wins over --region")
    p.add_argument(
        "--eu-only",
        action="store_true",
        help="refuse to start unless the upstream is the Mathpix EU deployment",
    )
    p.add_argument(
        "--expires",
        type=int,
        default=300,
        help="token lifetime in seconds; callers may ask for less (default 300)",
    )
    p.add_argument("--min-expires", type=int, default=30, help="shortest lifetime (default 30)")
    p.add_argument(
        "--rate-limit",
        type=float,
        default=30,
        help="token requests per caller per minute (default 30)",
    )
    p.add_argument("--burst", type=int, help="requests a caller may make at once (default: rate)")
    p.add_argument("--prefix", help="URL prefix (JupyterHub mode: JUPYTERHUB_SERVICE_PREFIX)")
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (the TLS proxy)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxy addresses trusted for forwarded headers (default 127.0.0.1)",
    )
    g = p.add_argument_group("proxy mode (docs/token-service.md, 'The proxy')")
    g.add_argument(
        "--proxy",
        action="store_true",
        help="also forward /v3/... to Mathpix with the key (async, PDFs, ocr-results for "
        "callers without a key); callers authenticate as for /token",
    )
    g.add_argument(
        "--proxy-endpoints",
        help="endpoint groups allowed (default ocr,results,pdf,converter,batch,app-tokens; "
        "also: usage, account)",
    )
    g.add_argument("--state-db", help="SQLite file of ownership and usage (default: in memory)")
    g.add_argument(
        "--proxy-rate-limit", type=float, default=600, help="proxied requests per caller a minute"
    )
    g.add_argument("--proxy-burst", type=int, help="proxied requests a caller may make at once")
    g.add_argument("--images-per-day", type=int, help="per-caller quota (default unlimited)")
    g.add_argument("--images-per-month", type=int, help="per-caller quota")
    g.add_argument("--pages-per-day", type=int, help="per-caller PDF-page quota")
    g.add_argument("--pages-per-month", type=int, help="per-caller PDF-page quota")
    g.add_argument(
        "--max-pdf-mb", type=float, default=1024, help="largest PDF upload (MB, default 1024)"
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="browser origin allowed to call /token and the proxy (repeatable; default none)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _bind(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, int]:
    host, port = args.host, args.port
    service_url = env.get("JUPYTERHUB_SERVICE_URL") if args.jupyterhub else None
    if service_url and (host is None or port is None):
        parts = urlsplit(service_url)
        host = host or parts.hostname
        port = port or parts.port
    return host or "127.0.0.1", port or DEFAULT_PORT


def _serve(argv: list[str], env: Mapping[str, str]) -> int:
    args = _serve_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mathpix_nb.tokens").setLevel(args.log_level.upper())
    hub_api_url = None
    if args.jupyterhub or args.hub_api_url:
        hub_api_url = args.hub_api_url or env.get("JUPYTERHUB_API_URL")
        if not hub_api_url:
            print(
                "mathpix-nb token-server: --jupyterhub needs the hub API URL: run it as a hub "
                "service (JUPYTERHUB_API_URL is set) or pass --hub-api-url",
                file=sys.stderr,
            )
            return 2
    prefix = args.prefix
    if prefix is None:
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "") if args.jupyterhub else ""
    from ._app import create_app
    from ._proxy import DEFAULT_GROUPS
    from ._store import Quotas

    try:
        app = create_app(
            callers_file=args.callers_file,
            hub_api_url=hub_api_url,
            hub_allowed_users=_split(args.hub_users),
            hub_allowed_groups=_split(args.hub_groups),
            region=args.region,
            base_url=args.base_url,
            eu_only=True if args.eu_only else None,
            expires=args.expires,
            min_expires=args.min_expires,
            rate_limit_per_minute=args.rate_limit,
            rate_limit_burst=args.burst,
            prefix=prefix,
            proxy=args.proxy,
            proxy_endpoints=_split(args.proxy_endpoints) or DEFAULT_GROUPS,
            proxy_rate_limit_per_minute=args.proxy_rate_limit,
            proxy_rate_limit_burst=args.proxy_burst,
            quotas=Quotas(
                images_per_day=args.images_per_day,
                images_per_month=args.images_per_month,
                pages_per_day=args.pages_per_day,
                pages_per_month=args.pages_per_month,
            ),
            state_db=args.state_db or ":memory:",
            max_pdf_bytes=int(args.max_pdf_mb * 1024 * 1024),
            cors_origins=args.cors_origin,
            environ=env,
        )
    except ConfigurationError as exc:
        print(f"mathpix-nb token-server: {exc}", file=sys.stderr)
        return 2
    from .._serving import serve_forever

    host, port = _bind(args, env)
    serve_forever(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=not args.proxy,  # proxied paths may hold app tokens; the audit log replaces it
    )
    return 0


def _new_caller(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="mathpix-nb token-server new-caller",
        description="Create a caller: prints its secret once (give it to the caller) and the "
        "line for the callers file (appended with --callers-file; only the hash is stored).",
    )
    p.add_argument("name")
    p.add_argument("--callers-file", help="append the hashed line to this file (mode 600)")
    args = p.parse_args(argv)
    secret = new_secret()
    line = f"{args.name} {hash_secret(secret)}"
    if args.callers_file:
        path = Path(args.callers_file)
        try:
            existing = load_callers_file(path) if path.exists() else None
            if existing is not None and args.name in existing.digests:
                print(
                    f"mathpix-nb token-server: caller {args.name!r} is already in {str(path)!r}",
                    file=sys.stderr,
                )
                return 2
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except (ConfigurationError, OSError) as exc:
            print(f"mathpix-nb token-server: {exc}", file=sys.stderr)
            return 2
        print(f"added {args.name!r} to {str(path)!r}", file=sys.stderr)
    else:
        print(f"callers-file line: {line}", file=sys.stderr)
    print(secret)
    return 0


def _hash(argv: list[str]) -> int:
    if argv:
        print(
            "usage: mathpix-nb token-server hash < secret   (reads the secret from stdin)",
            file=sys.stderr,
        )
        return 2
    secret = sys.stdin.readline().strip()
    if not secret:
        print("mathpix-nb token-server hash: no secret on stdin", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def main(argv: list[str]) -> int:
    """Entry point used by ``mathpix-nb token-server``."""
    if argv and argv[0] == "new-caller":
        return _new_caller(argv[1:])
    if argv and argv[0] == "hash":
        return _hash(argv[1:])
    return _serve(argv, os.environ)
