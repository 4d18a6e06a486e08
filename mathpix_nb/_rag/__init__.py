"""The shared core of the RAG surfaces (``mathpix_nb.langchain``, ``mathpix_nb.llama_index``).

Sources (:mod:`._sources`), records and their metadata (:mod:`._records`) and the one load
flow with its sync and async drivers (:mod:`._flow`). No framework is imported here: each
surface wraps :class:`Record` in its own document type. The surfaces never import each other.
"""

from ._flow import (
    DEFAULT_FILES_THRESHOLD,
    Api,
    CacheOption,
    ErrorPolicy,
    LoadMode,
    RagEngine,
)
from ._records import TECHNICAL_KEYS, OutputFormat, Record, record_id
from ._sources import (
    DEFAULT_MAX_FILES,
    DOCUMENT_SUFFIXES,
    IMAGE_SUFFIXES,
    Item,
    SourceError,
    item_from_parts,
    normalise_sources,
)

__all__ = [
    "DEFAULT_FILES_THRESHOLD",
    "DEFAULT_MAX_FILES",
    "DOCUMENT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "TECHNICAL_KEYS",
    "Api",
    "CacheOption",
    "ErrorPolicy",
    "Item",
    "LoadMode",
    "OutputFormat",
    "RagEngine",
    "Record",
    "SourceError",
    "item_from_parts",
    "normalise_sources",
    "record_id",
]
