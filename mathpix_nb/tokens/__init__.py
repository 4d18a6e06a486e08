"""App-token service for teams: the Mathpix key stays on one server, notebooks get tokens.

``create_app(...)`` builds the ASGI app (Starlette); ``mathpix-nb token-server`` runs it with
uvicorn. Notebooks use it with ``Mathpix(token_url=".../token", token_auth="<secret>")``.
With ``proxy=True`` (``token-server --proxy``) it also forwards ``/v3/...`` with the key, so
notebooks use ``Mathpix(proxy_url=..., proxy_auth=...)`` for async, PDFs and ocr-results.
See docs/token-service.md for deployment (reverse proxy with TLS, JupyterHub service, EU-only,
the proxy and a three-region deployment).
"""

from __future__ import annotations

from .._serving import ThreadedServer
from ._app import TokenService, create_app
from ._callers import CALLERS_ENV, Callers, hash_secret, load_callers_file, new_secret
from ._store import Quotas

__all__ = [
    "CALLERS_ENV",
    "Callers",
    "Quotas",
    "ThreadedServer",
    "TokenService",
    "create_app",
    "hash_secret",
    "load_callers_file",
    "new_secret",
]
