"""Shared fixtures: a clean environment for every test and a session-wide local server.

Area-specific fixtures live in each area's own conftest (tests/<area>/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

_ENV_PREFIXES = ("MATHPIX_",)


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees a developer's real Mathpix credentials or config."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    # Keep caches and journals out of the user's home directory.
    monkeypatch.setenv("MATHPIX_NB_HOME", str(tmp_path_factory.mktemp("mathpix_nb_home")))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def local_server() -> Iterator[Any]:
    """One echo-engine server (regions global and eu) shared by a whole test session.

    Tests that change its configuration must use their own ``LocalServer`` instead.
    """
    from mathpix_nb.server import LocalServer

    with LocalServer(engine="echo", regions=("global", "eu")) as server:
        yield server
