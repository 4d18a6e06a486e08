"""The kernel-side renderer: what the panel shows as "Rendered"."""

from __future__ import annotations

import pytest

from mathpix_nb.jupyter import markdown_to_html


def test_text_is_escaped_so_ocr_output_cannot_inject_html() -> None:
    out = markdown_to_html("<script>alert(1)</script> & <b>x</b>")
    assert "<script>" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out


def test_inline_and_display_math_become_mathml() -> None:
    pytest.importorskip("latex2mathml")
    out = markdown_to_html("Area $\\pi r^2$ and\n$$\n\\frac{a}{b}\n$$")
    assert out.count("<math") == 2
    assert 'display="block"' in out and 'display="inline"' in out
    # The TeX travels along (data-tex) so it can be copied or re-typeset.
    assert 'data-tex="\\pi r^2"' in out


def test_mathpix_delimiters_are_understood_too() -> None:
    out = markdown_to_html("\\( x^2 \\) and \\[ y \\]")
    assert out.count('class="mpx-math') == 2
    assert "x^2" in out and "and" in out


def test_math_is_not_markdown_processed() -> None:
    # "*" inside math must stay math, not turn into <em>.
    out = markdown_to_html("$a*b*c$ and *word*")
    assert "<em>word</em>" in out
    assert out.count("<em>") == 1


def test_unparseable_tex_is_kept_readable_and_marked_for_mathjax() -> None:
    out = markdown_to_html("$\\frac{a}{$ ok")
    assert "mpx-tex" in out and "\\frac{a}{" in out


def test_blocks_headings_lists_code() -> None:
    md = "# Title\n\\section{Intro}\n- one\n- two\n\n1. first\n\n```\na < b\n```\nline1\nline2"
    out = markdown_to_html(md)
    assert "<h3>Title</h3>" in out and "<h4>Intro</h4>" in out
    assert "<ul><li>one</li><li>two</li></ul>" in out
    assert "<ol><li>first</li></ol>" in out
    assert "<pre><code>a &lt; b</code></pre>" in out
    assert "<p>line1<br>line2</p>" in out


def test_dollar_amounts_in_prose_do_not_swallow_text_across_lines() -> None:
    out = markdown_to_html("costs $5\nand $6")
    assert "costs $5" in out and "and $6" in out


def test_show_offers_html_markdown_and_text(client: object, png_bytes: bytes) -> None:
    from IPython.utils.capture import capture_output

    from mathpix_nb.jupyter import show

    result = client.text(png_bytes)  # type: ignore[attr-defined]
    with capture_output() as captured:
        show(result)
    (output,) = captured.outputs
    assert output.data["text/markdown"] == result.markdown()
    assert result.text in output.data["text/html"]
    assert output.data["text/plain"].startswith("OcrResult(")
