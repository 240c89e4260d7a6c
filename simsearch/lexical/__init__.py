"""The lexical (BM25) index: tantivy, with query text treated as data."""

from simsearch.lexical.tantivy_index import LexicalIndex, LexicalSearcher, build_lexical

__all__ = ["LexicalIndex", "LexicalSearcher", "build_lexical"]
