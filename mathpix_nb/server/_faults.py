"""Deterministic fault decisions for the local server (see ``Faults``)."""

from __future__ import annotations

import random
import threading

from ._config import FAULT_KINDS, Faults


class FaultInjector:
    """Decides, per request, which fault (if any) ``Faults`` asks for.

    A random draw is keyed by (seed, endpoint, request key, how many times that key was seen),
    so a bulk run over the same inputs meets the same faults whatever the concurrency.
    """

    def __init__(self, faults: Faults | None) -> None:
        self.faults = faults
        self._seen: dict[str, int] = {}
        self._sequence = list(faults.sequence) if faults else []
        self._lock = threading.Lock()

    def applies_to(self, endpoint: str) -> bool:
        f = self.faults
        if f is None or not endpoint.startswith(("/v3/", "/files/")):
            return False
        return f.endpoints is None or endpoint in f.endpoints

    def decide(self, endpoint: str, key: str, uses_token: bool = False) -> str | None:
        """The fault for this request, or None. ``token_expired`` only ever goes to requests
        authenticated with an app token: a queued one waits for such a request. The Files API
        has no HTTP-200 error bodies, so ``sys_exception`` becomes ``http_5xx`` there."""
        kind = self._decide(endpoint, key, uses_token)
        if kind == "sys_exception" and endpoint.startswith("/files/"):
            return "http_5xx"
        return kind

    def _decide(self, endpoint: str, key: str, uses_token: bool) -> str | None:
        f = self.faults
        if f is None or not self.applies_to(endpoint):
            return None
        with self._lock:
            if self._sequence:
                if self._sequence[0] == "token_expired" and not uses_token:
                    return None
                return self._sequence.pop(0)
            seen_key = f"{endpoint}|{key}"
            n = self._seen.get(seen_key, 0)
            self._seen[seen_key] = n + 1
        u = random.Random(f"{f.seed}|{seen_key}|{n}").random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(f, kind)
            if u < edge:
                return None if kind == "token_expired" and not uses_token else kind
        return None
