"""result.tables(): DataFrames from the API's table data, else from the Mathpix Markdown."""

from __future__ import annotations

import sys

import pytest

from mathpix_nb import OcrResult, PdfResult

from .conftest import RICH_MMD

pd = pytest.importorskip("pandas")


def test_tabular_in_the_markdown_becomes_a_dataframe() -> None:
    (frame,) = OcrResult(raw={"text": RICH_MMD}).tables()
    assert list(frame.columns) == ["Name", "Value"]
    assert frame["Name"].tolist() == ["alpha", "beta"]
    assert frame["Value"].tolist() == ["1.5", "$x^{2}$"]  # math keeps its TeX
    assert frame.attrs["mathpix_source"] == "tabular"


def test_numbers_spans_escapes_and_pipe_tables_in_document_order() -> None:
    mmd = r"""| k | v |
|:--|--:|
| a\|b | 2 |

\begin{tabular}{|c|c|c|}
\hline \multicolumn{2}{|c|}{AB} & C \\
\hline 1 & 2.5 & R\&D \\
\hline -3 & {4} & \textbf{x} \\
\hline
\end{tabular}"""
    first, second = OcrResult(raw={"text": mmd}).tables()
    assert first.attrs["mathpix_source"] == "markdown"
    assert first.to_dict("list") == {"k": ["a|b"], "v": [2]}
    assert list(second.columns) == ["AB", "column 2", "C"]
    assert second["AB"].tolist() == [1, -3] and second["column 2"].tolist() == [2.5, 4]
    assert second["C"].tolist() == ["R&D", "x"]


def test_api_tsv_data_wins_over_the_markdown() -> None:
    raw = {"text": RICH_MMD, "data": [{"type": "tsv", "value": "a\tb\n1\t2\n3\t4"}]}
    (frame,) = OcrResult(raw=raw).tables()
    assert frame.attrs["mathpix_source"] == "tsv" and frame.to_dict("list") == {
        "a": [1, 3],
        "b": [2, 4],
    }


def test_html_answers_and_pdf_html_output() -> None:
    html = (
        "<p>x</p><table><tr><th>h1</th><th>h2</th></tr>"
        "<tr><td colspan='2'>wide &amp; tall</td></tr><tr><td>1</td><td><b>2</b></td></tr>"
        "</table>"
    )
    (frame,) = OcrResult(raw={"text": "no table here", "html": html}).tables()
    assert list(frame.columns) == ["h1", "h2"] and frame["h1"].tolist() == ["wide & tall", "1"]
    pdf = PdfResult(pdf_id="p", status="completed", outputs={"html": html.encode()})
    assert [list(f.columns) for f in pdf.tables()] == [["h1", "h2"]]
    md_only = PdfResult(pdf_id="p", status="completed", outputs={"mmd": RICH_MMD.encode()})
    assert len(md_only.tables()) == 1


def test_no_tables_is_an_empty_list() -> None:
    assert OcrResult(raw={"text": "just words"}).tables() == []
    assert OcrResult(raw={}).tables() == []


def test_without_pandas_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'mathpix_nb\[pandas\]'"):
        OcrResult(raw={"text": RICH_MMD}).tables()
