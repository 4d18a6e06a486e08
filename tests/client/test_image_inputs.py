"""The input matrix (tests/inputs.py) through ``Mathpix.text`` and ``AsyncMathpix.text``
against the local echo server over loopback: every kind succeeds or raises its specific error
class with a message that names the problem and the fix, within a few seconds (special files:
two), never hanging, never reading a device."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mathpix_nb import APIError

from ..inputs import INPUT_KINDS, Case, Ctx, FileServer, missing
from .conftest import keys

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with FileServer().running() as served:
        yield served


def _param(case: Case) -> Any:
    marks = [pytest.mark.timeout(2 if case.kind == "special" else 10)]
    return pytest.param(case, id=case.id, marks=marks)


def test_the_matrix_is_big_and_names_are_unique() -> None:
    ids = [case.id for case in INPUT_KINDS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60
    assert {case.kind for case in INPUT_KINDS} >= {
        "file",
        "special",
        "bytes",
        "stream",
        "pil",
        "numpy",
        "remote",
        "crop",
        "option",
        "format",
    }


@pytest.mark.parametrize("case", [_param(case) for case in INPUT_KINDS])
async def test_input_kind(
    case: Case, make: Callable[..., Any], srv: Any, files: FileServer, tmp_path: Path
) -> None:
    absent = missing(case)
    if absent:
        pytest.skip(f"needs {', '.join(absent)}")
    ctx = Ctx(tmp=tmp_path, publish=files.publish)
    try:
        image = case.make(ctx)
        api = make(**keys(srv))
        kwargs: dict[str, Any] = dict(case.options)
        if case.crop is not None:
            kwargs["crop"] = case.crop
        if case.prepare is not None:
            kwargs["prepare"] = case.prepare
        if case.ok:
            result = await api.text(image, **kwargs)
            assert re.search(case.match, result.text), result.text
        else:
            assert case.error is not None
            with pytest.raises(case.error) as info:
                await api.text(image, **kwargs)
            assert type(info.value) is case.error, repr(info.value)  # the specific class
            assert re.search(case.match, str(info.value)), str(info.value)
            if not issubclass(case.error, APIError):
                assert not srv.log, "nothing may be sent for an input refused in the client"
    finally:
        ctx.close()
