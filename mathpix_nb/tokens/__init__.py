"""App-token service for teams: the Mathpix key stays on one server, notebooks get tokens.

``create_app(...)`` builds the ASGI app (Starlette); ``mathpix-nb token-server`` runs it with
uvicorn. Notebooks use it with ``Mathpix(token_url=".../token", token_auth="<secret>")``.
See docs/token-service.md for deployment (reverse proxy with TLS, JupyterHub service, EU-only).
"""

from __future__ import annotations

from .._serving import ThreadedServer
from ._app import TokenService, create_app
from ._callers import CALLERS_ENV, Callers, hash_secret, load_callers_file, new_secret

__all__ = [
    "CALLERS_ENV",
    "Callers",
    "ThreadedServer",
    "TokenService",
    "create_app",
    "hash_secret",
    "load_callers_file",
    "new_secret",
]
