"""Bulk OCR over Dask: ``ocr_dask`` on the threaded scheduler or a ``dask.distributed`` cluster.

On a cluster of worker processes (see ``docs/dask.md``):

* **credentials are resolved on each worker** from its environment (keys, app token, token URL
  or the team proxy, by the core's one rule ``resolve_settings``). The task graph carries only
  a secret-free :class:`_ClientSpec` (host, region, timeout, retries, image preparation);
* **one budget for the whole cluster**: every ``POST v3/text`` holds a lease of one
  ``distributed.Semaphore`` (``cluster_concurrency``) and, with ``requests_per_minute``, a slot
  of a sliding 60-second window kept on the scheduler, so N workers send what one account
  allows, not N times that;
* **the API is the journal of record**: one task lists the dataset's accepted jobs from
  ``v3/ocr-results`` once (one request per ``per_page`` jobs) and every partition gets that
  listing, so workers whose journals are empty, lost or elsewhere pay for none of them again;
* **a retried partition pays nothing twice**: the scheduler remembers which partitions have
  started (``Client.set_metadata``); a partition running again (its worker died, or its result
  was lost) looks every image its own journal lacks up by its row tag in ``v3/ocr-results``
  before sending it (``BulkConfig.recover_by_tag``);
* **typed columns** (``string`` and ``Float64``, declared in ``meta``) so ``to_parquet`` works;
* **a progress bar on the client**, fed by the workers through ``Worker.log_event`` and
  ``Client.subscribe_topic``.

Without a ``distributed.Client`` (threaded or synchronous scheduler) it is
``map_partitions(ocr_frame)`` as before, client object included.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx

from .._client import AsyncMathpix, Mathpix
from .._images import ImagePrep
from .._journal import Journal, RemoteJob
from .._retry import RetryPolicy
from .._transport import ShardedAsyncTransport
from . import _api, _frame
from ._engine import BulkConfig, dataset_tag, list_dataset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ocr_dask"]

#: result column dtypes: nullable, the same in every partition (parquet needs one schema)
DTYPES = {
    "text": "string",
    "latex_styled": "string",
    "confidence": "Float64",
    "request_id": "string",
    "error": "string",
    "html": "string",  # with formats=[..., "html"]
    "data": "string",  # with formats=[..., "data"]: JSON text
}

_WINDOW = 60.0  # seconds: Mathpix's per-minute limit
_MARGIN = 1.0  # seconds added to the window: network jitter between scheduler and API
_EVENT_EVERY = 0.25  # seconds between progress events of one partition
#: seconds a re-run partition waits before its tag lookups, so that an upload its dead
#: worker still had in flight has landed (and is found) rather than being sent again
RERUN_SETTLE = 2.0


@dataclasses.dataclass(frozen=True)
class _ClientSpec:
    """What a worker needs to build its client, without a secret: credentials come from the
    worker's own environment (``MATHPIX_APP_ID``/``_KEY``, ``MATHPIX_APP_TOKEN``,
    ``MATHPIX_TOKEN_URL``, ``MATHPIX_PROXY_URL``/``_AUTH``)."""

    base_url: str | None = None
    region: str | None = None
    timeout: httpx.Timeout | None = None
    max_retries: int = 4
    prep: ImagePrep | None = dataclasses.field(default_factory=ImagePrep)
    retry: RetryPolicy | None = None

    @classmethod
    def of(cls, client: Any) -> _ClientSpec:
        if client is None:
            return cls()
        if not isinstance(client, Mathpix | AsyncMathpix):
            raise TypeError(
                f"client must be a mathpix_nb.Mathpix or AsyncMathpix, got {type(client).__name__}"
            )
        settings = client.settings
        proxied = settings.proxy_url is not None  # the worker's MATHPIX_PROXY_URL decides
        return cls(
            base_url=None if proxied else str(settings.base_url),
            region=str(settings.region) if proxied else None,  # base_url names the host
            timeout=settings.timeout,
            max_retries=int(settings.max_retries),
            prep=client.prep,
            retry=client.retry,
        )

    def client(self, *, connections: int, gate: _Gate | None) -> tuple[AsyncMathpix, Any]:
        """An ``AsyncMathpix`` with this worker's credentials over sharded pools whose
        uploads pass the cluster's gate, and its HTTP client (to close). A
        ``ConfigurationError`` names the worker and the fix."""
        from .._exceptions import ConfigurationError

        transport: httpx.AsyncBaseTransport = ShardedAsyncTransport(connections=connections)
        if gate is not None:
            transport = _GatedTransport(transport, gate)
        http = httpx.AsyncClient(transport=transport)
        try:
            client = AsyncMathpix(
                base_url=self.base_url,
                region=self.region,
                timeout=self.timeout,
                max_retries=self.max_retries,
                prepare=self.prep if self.prep is not None else False,
                retry=self.retry,
                http_client=http,
            )
        except ConfigurationError as exc:
            hint = (
                " ocr_dask resolves credentials on each worker from its environment; set them "
                "in every worker's environment (e.g. `MATHPIX_APP_ID=... MATHPIX_APP_KEY=... "
                "dask worker ...`)."
                if "credentials" in str(exc)
                else ""
            )
            raise ConfigurationError(f"on Dask worker {_worker_name()}: {exc}{hint}") from None
        return client, http


@dataclasses.dataclass(frozen=True)
class _Budget:
    """The cluster-wide limits, by name (picklable): a semaphore and a rate window."""

    name: str
    concurrency: int | None
    requests_per_minute: int | None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _reserve_slot(name: str, limit: int, window: float, dask_scheduler: Any = None) -> float:
    """On the scheduler: reserve the next send time of a sliding window of ``limit`` requests
    per ``window`` seconds; return the delay until it (seconds, so clocks need not agree)."""
    slots_by_name: dict[str, deque[float]] | None = getattr(
        dask_scheduler, "_mathpix_nb_slots", None
    )
    if slots_by_name is None:
        slots_by_name = {}
        dask_scheduler._mathpix_nb_slots = slots_by_name
    slots = slots_by_name.get(name)
    if slots is None or slots.maxlen != limit:
        slots = slots_by_name[name] = deque(slots or (), maxlen=limit)
    now = time.monotonic()
    slot = now if len(slots) < limit else max(now, slots[0] + window)
    slots.append(slot)  # the oldest reservation falls off the front
    return slot - now


_SEMAPHORES: dict[str, Any] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _semaphore(worker: Any, name: str, leases: int) -> Any:
    """This worker process's handle on the cluster semaphore ``name`` (made once)."""
    from distributed import Semaphore

    with _SEMAPHORES_LOCK:
        sem = _SEMAPHORES.get(name)
        if sem is None:
            make: Any = Semaphore  # distributed is untyped
            sem = make(
                max_leases=leases, name=name, scheduler_rpc=worker.scheduler, loop=worker.loop
            )
            _SEMAPHORES[name] = sem
        return sem


class _Gate:
    """Holds a lease of the cluster semaphore, then waits for a slot of the rate window."""

    def __init__(self, budget: _Budget, worker: Any, dclient: Any) -> None:
        self.budget = budget
        self.dclient = dclient
        self.sem = (
            _semaphore(worker, budget.name, budget.concurrency) if budget.concurrency else None
        )
        self.waited = 0.0

    async def acquire(self) -> None:
        if self.sem is not None:
            # shielded: a lease granted while we were being cancelled must not be lost
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.sem.acquire)
        limit = self.budget.requests_per_minute
        if not limit:
            return
        try:
            delay = await anyio.to_thread.run_sync(
                lambda: self.dclient.run_on_scheduler(
                    _reserve_slot, self.budget.name, limit, _WINDOW + _MARGIN
                )
            )
            if delay > 0:
                self.waited += delay
                await anyio.sleep(delay)
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        if self.sem is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.sem.release)


class _GatedTransport(httpx.AsyncBaseTransport):
    """Every image upload (``POST``) passes the cluster's gate; other requests go straight."""

    def __init__(self, inner: httpx.AsyncBaseTransport, gate: _Gate) -> None:
        self.inner, self.gate = inner, gate

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return await self.inner.handle_async_request(request)
        await self.gate.acquire()
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()  # the lease covers the whole exchange
            return response
        finally:
            await self.gate.release()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _WorkerJob(_frame._BulkCall):
    """One partition's bulk call on a worker, over a client built there (closed after)."""

    def __init__(self, spec: _ClientSpec, kwargs: dict[str, Any], gate: _Gate | None) -> None:
        concurrency = int(kwargs.get("concurrency") or BulkConfig().concurrency)
        client, http = spec.client(connections=concurrency + 4, gate=gate)
        super().__init__(client, kwargs, asynchronous=False)
        self.own_http = http


def _typed(out: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return out.astype(
        {prefix + name: dtype for name, dtype in DTYPES.items() if prefix + name in out.columns}
    )


def _fields(kwargs: dict[str, Any]) -> tuple[str, ...]:
    options = dict(kwargs.get("options") or {})
    if "formats" in kwargs:
        options["formats"] = kwargs["formats"]
    return _frame.result_fields(options)


def _list_known(
    client: Any, spec: _ClientSpec | None, dataset: str, per_page: int
) -> dict[str, RemoteJob] | None:
    """The dataset's jobs as v3/ocr-results lists them, by row tag: read once (on a worker,
    with its credentials) and handed to every partition. None if they cannot be listed
    (app-token auth, an error): each partition then lists through its own journal."""

    async def go() -> dict[str, RemoteJob] | None:
        mathpix: Any
        if spec is not None:
            mathpix, http = spec.client(connections=2, gate=None)
        else:
            mathpix, http = _api.client_for_run(client, connections=2)
        api = _api.Api(mathpix, concurrency=2, own_http=http)
        found: dict[str, RemoteJob] = {}

        def keep(jobs: list[RemoteJob]) -> None:
            for job in jobs:
                prev = found.get(job.row_tag)
                if prev is None or prev.result is None or (job.ok and not prev.ok):
                    found[job.row_tag] = job

        try:
            if not api.can_async:
                return None
            await list_dataset(api, dataset_tag(dataset), per_page=per_page, on_jobs=keep)
        except (_api.Retryable, _api.Failed) as exc:
            _frame.log.warning("listing dataset %r failed (%s); partitions list it", dataset, exc)
            return None
        finally:
            await api.aclose()
        return found

    return anyio.run(go)


class _PartitionOCR:
    """The per-partition task. Holds no client and no secret: it pickles to the workers."""

    def __init__(
        self,
        column: Any,
        client: Any,
        spec: _ClientSpec | None,
        prefix: str,
        kwargs: dict[str, Any],
        budget: _Budget | None,
        token: str,
        recover_by_tag: bool | None,
    ) -> None:
        self.column, self.client, self.spec, self.prefix = column, client, spec, prefix
        self.kwargs, self.budget, self.token = kwargs, budget, token
        self.recover_by_tag = recover_by_tag

    def __dask_tokenize__(self) -> str:
        return self.token

    def __call__(
        self,
        part: pd.DataFrame,
        known: dict[str, RemoteJob] | None = None,
        partition_info: Any = None,
    ) -> pd.DataFrame:
        if self.spec is None:  # threaded / synchronous scheduler: this process, this client
            series = _frame._column(part, self.column)
            _frame._check_prefix(part, self.prefix)
            kwargs = dict(self.kwargs, prefix=self.prefix)
            out = _frame._run_sync(series, part, self.client, kwargs, known=known)
            return _typed(out, self.prefix)
        return self._on_worker(part, (partition_info or {}).get("number", 0), known)

    def _on_worker(
        self, part: pd.DataFrame, number: int, known: dict[str, RemoteJob] | None
    ) -> pd.DataFrame:
        assert self.spec is not None
        from distributed import get_client, get_worker

        try:
            worker, dclient = get_worker(), get_client()
        except ValueError:  # computed with another scheduler (e.g. scheduler="threads")
            kwargs = dict(self.kwargs, prefix=self.prefix, progress=False)
            job = _WorkerJob(self.spec, kwargs, None)
            job.known = known
            series = _frame._column(part, self.column)
            rows, summary = anyio.run(job.run, series, None)
            out = _frame._finish(series, part, rows, summary, self.prefix, job.fields)
            return _typed(out, self.prefix)
        dclient_any: Any = dclient
        attempt = uuid.uuid4().hex[:8]
        mark = ["mathpix-nb", self.token, str(number)]
        seen = dclient_any.get_metadata(mark, None)
        dclient_any.set_metadata(mark, attempt)
        recover = seen is not None if self.recover_by_tag is None else self.recover_by_tag
        gate = _Gate(self.budget, worker, dclient) if self.budget is not None else None
        kwargs = dict(self.kwargs, prefix=self.prefix, progress=False)
        if recover:
            kwargs["recover_by_tag"] = True
            if seen is not None:
                time.sleep(RERUN_SETTLE)
        series = _frame._column(part, self.column)
        _frame._check_prefix(part, self.prefix)
        job = _WorkerJob(self.spec, kwargs, gate)
        job.known = known
        topic = f"mathpix-nb-{self.token}"
        state = {"done": 0, "sent": 0.0}

        def event(end: bool) -> None:
            worker.log_event(
                topic,
                {"p": number, "a": attempt, "rows": len(series), "done": state["done"], "end": end},
            )

        def on_rows_done(n: int) -> None:
            state["done"] += n
            now = time.monotonic()
            if now - state["sent"] >= _EVENT_EVERY:
                state["sent"] = now
                event(False)

        event(False)
        rows, summary = anyio.run(job.run, series, on_rows_done)
        event(True)
        if gate is not None and gate.waited:
            _frame.log.info("%s; waited %.1fs for the cluster's rate budget", summary, gate.waited)
        out = _frame._finish(series, part, rows, summary, self.prefix, job.fields)
        return _typed(out, self.prefix)


class _ProgressFeed:
    """Client side: one tqdm bar over the rows of every partition, from the workers' events.

    A partition that runs again (retried on another worker) replaces its earlier counts."""

    def __init__(self, npartitions: int) -> None:
        self.npartitions = npartitions
        self.parts: dict[int, tuple[str, int, int, bool]] = {}
        self.bar: Any = None
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        _, msg = event
        with self.lock:
            self.parts[int(msg["p"])] = (msg["a"], int(msg["rows"]), int(msg["done"]), msg["end"])
            total = sum(p[1] for p in self.parts.values())
            done = sum(p[2] for p in self.parts.values())
            finished = len(self.parts) == self.npartitions and all(
                p[3] for p in self.parts.values()
            )
            if self.bar is None:
                if finished and done == 0:
                    return
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="mathpix OCR (dask)", unit="img")
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()
            if finished:
                self.bar.close()
                self.bar = None
                self.parts.clear()  # a second compute() starts a new bar


def _distributed_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:
        return None
    find: Any = default_client  # distributed is untyped
    try:
        return find()
    except ValueError:  # no Client: the threaded / synchronous / processes scheduler
        return None


def ocr_dask(
    ddf: Any,
    column: Any,
    *,
    client: Any = None,
    prefix: str = "ocr_",
    concurrency: int = 8,
    cluster_concurrency: int | None = None,
    requests_per_minute: int | None = None,
    recover_by_tag: bool | None = None,
    progress: bool | None = None,
    journal: Journal | str | os.PathLike[str] | bool | None = None,
    **kwargs: Any,
) -> Any:
    """Lazy bulk OCR over a Dask DataFrame: :func:`ocr_frame` on each partition.

    With a ``dask.distributed`` Client the partitions run on its workers, which resolve
    credentials from their own environment (``client=`` contributes only its host, region,
    timeout, retries and image preparation; no secret enters the task graph), and share one
    budget: at most ``cluster_concurrency`` uploads in flight over the whole cluster (default
    ``concurrency``) and, if set, ``requests_per_minute`` uploads in any 60 seconds. A
    partition that runs again looks up by tag the images it would send (``recover_by_tag``:
    None = on re-runs only, True = always, False = never), so nothing is paid twice.

    Args:
        ddf: a Dask DataFrame with a column of image paths or URLs (not modified).
        column: the column holding the images.
        client: a ``Mathpix``/``AsyncMathpix``; default: each worker's environment.
        prefix: result column prefix; the columns are typed (``string``, ``Float64``).
        concurrency: images read/prepared/uploaded at once in each partition.
        cluster_concurrency: uploads in flight over the whole cluster (distributed only).
        requests_per_minute: uploads in any 60 s over the whole cluster (distributed only).
        recover_by_tag: see above.
        progress: a tqdm bar on the client fed by the workers (default: on with a
            distributed Client, off otherwise).
        journal: as for :func:`ocr_frame`, opened on each worker (a local cache there).
            Before the partitions run, one task lists the ``dataset``'s jobs Mathpix already
            accepted (v3/ocr-results, one request per ``per_page`` jobs) and every partition
            takes those instead of paying again, whatever its worker's journal holds.
        kwargs: further :func:`ocr_frame` keywords and v3/text options.
    """
    import pandas as pd

    meta = ddf._meta.copy()
    _frame._check_prefix(meta, prefix)
    for name in _fields(kwargs):
        meta[prefix + name] = pd.Series([], dtype=DTYPES[name])
    config = BulkConfig(
        **{k: v for k, v in kwargs.items() if k in ("dataset", "recover", "per_page")}
    )
    for name, value in (
        ("concurrency", concurrency),
        ("cluster_concurrency", cluster_concurrency),
        ("requests_per_minute", requests_per_minute),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    kwargs = dict(kwargs, concurrency=concurrency, journal=journal)
    token = f"mathpix-ocr-{uuid.uuid4().hex}"
    dclient = _distributed_client()
    if dclient is None:
        if cluster_concurrency is not None or requests_per_minute is not None:
            raise ValueError(
                "cluster_concurrency= and requests_per_minute= need a dask.distributed Client "
                "(`from distributed import Client; Client(scheduler_address)`); on one machine "
                "the engine's concurrency= is the budget"
            )
        kwargs["progress"] = bool(progress)
        task = _PartitionOCR(column, client, None, prefix, kwargs, None, token, False)
        return ddf.map_partitions(task, _known(client, None, config), meta=meta)
    if isinstance(journal, Journal):
        raise TypeError(
            "journal= cannot be a Journal object on a distributed cluster (it is opened on "
            "each worker); pass a path on the workers' disks, or None for their default"
        )
    budget = _Budget(
        name=f"mathpix-nb-budget-{uuid.uuid4().hex[:12]}",
        concurrency=cluster_concurrency or concurrency,
        requests_per_minute=requests_per_minute,
    )
    task = _PartitionOCR(
        column, None, _ClientSpec.of(client), prefix, kwargs, budget, token, recover_by_tag
    )
    if progress is None or progress:
        dclient.subscribe_topic(f"mathpix-nb-{token}", _ProgressFeed(ddf.npartitions))
    return ddf.map_partitions(task, _known(None, task.spec, config), meta=meta)


def _known(client: Any, spec: _ClientSpec | None, config: BulkConfig) -> Any:
    """The one listing task every partition depends on (None when recovery is off)."""
    if not config.recover:
        return None
    from dask.delayed import delayed

    make: Any = delayed(_list_known, pure=False)
    return make(client, spec, config.dataset, config.per_page)
