"""The lexical analysers a collection may use, by name: what BM25 makes of a document and of a query.

- ``english`` (the default): words split on non-alphanumerics, lower-cased, English stop words dropped,
  Snowball-stemmed (tantivy's filters).
- ``standard``: language-neutral: words of letters and digits, and each CJK ideograph or kana on its own
  (as Unicode word segmentation treats them), lower-cased; no stop words, no stemming.
- ``chinese``: runs of Chinese characters segmented into words by jieba's search mode (rjieba, jieba's
  segmentation in Rust: the same dictionary and results, a thousand times faster than pure-Python jieba and
  without its seconds of start-up) plus each character alone; every other word keeps the English
  treatment, so English inside Chinese text still matches as English. Chosen by measurement against words
  alone, single characters and bigrams (bench/chinese.py, docs/results/chinese.md): see :data:`CHINESE`.

Chinese segmentation happens in Python before tantivy (tantivy-py has no Chinese tokenizer): the text
tantivy receives has its Chinese words separated by spaces, then the ``english`` pipeline runs over it
(CJK words pass its filters unchanged). A query always goes through the same analyser as the documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

AnalyserName = Literal["english", "chinese", "standard"]
# ideographs (with extensions), kana and the compatibility ideographs
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK_RUN = re.compile(f"[{CJK}]+")


def _rjieba() -> Any:
    import rjieba

    return rjieba


def _segment(text: str, words: Callable[[str], list[str]]) -> str:
    """``text`` with each run of CJK characters replaced by ``words(run)`` joined with spaces."""
    if not CJK_RUN.search(text):
        return text
    return CJK_RUN.sub(lambda m: " " + " ".join(w for w in words(m.group()) if w.strip()) + " ", text)


def jieba_words(run: str) -> list[str]:
    return list(_rjieba().cut_for_search(run))


def unigrams(run: str) -> list[str]:
    return list(run)


def bigrams(run: str) -> list[str]:
    return [run] if len(run) < 2 else [run[i : i + 2] for i in range(len(run) - 1)]


def jieba_and_unigrams(run: str) -> list[str]:
    return jieba_words(run) + [c for c in run if len(run) > 1]


# the candidates measured for `chinese` (bench/chinese.py, test nDCG@10 on LCQMC / ATEC / PAWS-X retrieval):
# jieba 97.72 / 30.30 / 76.98, single characters 98.28 / 36.16 / 76.78, bigrams 95.42 / 30.68 / 77.38, jieba
# words plus characters 98.18 / 35.87 / 76.92 (an independent BM25, bm25s: 98.10 / 36.14 / 76.01 at best).
# Words alone lose 6 points on ATEC (a word cut differently in a question and its duplicate never matches);
# words plus characters ties single characters (mean 70.32 against 70.41), has the highest recall@100 and
# keeps whole words as terms (ranked above scattered characters, marked as words on the page): chosen.
SEGMENTERS: dict[str, Callable[[str], list[str]]] = {
    "jieba": jieba_words,
    "unigram": unigrams,
    "bigram": bigrams,
    "jieba+unigram": jieba_and_unigrams,
}
CHINESE = "jieba+unigram"


@dataclass(frozen=True)
class Analyser:
    """An analyser: ``prepare`` (Python, before tantivy) and the tantivy pipeline registered as
    ``tokenizer_name`` (the name stored in the index's schema)."""

    name: str
    tokenizer_name: str
    prepare: Callable[[str], str]
    build: Callable[[Any], Any]  # tantivy module -> TextAnalyzer

    def tantivy(self) -> Any:
        import tantivy

        return self.build(tantivy)


def _english(t: Any) -> Any:
    return (
        t.TextAnalyzerBuilder(t.Tokenizer.simple())
        .filter(t.Filter.remove_long(40))
        .filter(t.Filter.lowercase())
        .filter(t.Filter.stopword("english"))
        .filter(t.Filter.stemmer("english"))
        .build()
    )


def _standard(t: Any) -> Any:
    return (
        t.TextAnalyzerBuilder(t.Tokenizer.regex(f"[{CJK}]|[\\p{{L}}\\p{{M}}\\p{{N}}]+"))
        .filter(t.Filter.remove_long(40))
        .filter(t.Filter.lowercase())
        .build()
    )


def chinese_with(segmenter: str) -> Analyser:
    words = SEGMENTERS[segmenter]
    return Analyser(f"chinese:{segmenter}", "simsearch_chinese", lambda text: _segment(text, words), _english)


ANALYSERS: dict[str, Analyser] = {
    # "english" keeps the tokenizer name of the indexes built before analysers were a choice
    "english": Analyser("english", "english", lambda text: text, _english),
    "standard": Analyser("standard", "simsearch_standard", lambda text: text, _standard),
    "chinese": chinese_with(CHINESE),
}


def analyser(name: str) -> Analyser:
    try:
        return ANALYSERS[name]
    except KeyError:
        raise ValueError(f"unknown analyser {name!r}: use one of {', '.join(ANALYSERS)}") from None


def mostly_cjk(text: str) -> bool:
    return cjk_share(text) > 0.5


def cjk_share(text: str) -> float:
    """The share of a text's letters that are CJK characters (0 for a text without letters)."""
    letters = sum(1 for c in text if c.isalpha())
    return len("".join(CJK_RUN.findall(text))) / letters if letters else 0.0
