from __future__ import annotations

from pathlib import Path

import pytest

from simsearch.data.corpus import CorpusError, iter_documents, resolve_corpus, scan_corpus
from tests.conftest import DOCS, write_jsonl


def test_beir_corpus_reads_every_field(corpus_file: Path) -> None:
    assert scan_corpus(corpus_file) == len(DOCS)
    docs = list(iter_documents(corpus_file))
    assert [d.id for d in docs] == [d["_id"] for d in DOCS]
    assert docs[0].metadata == {"lang": "en"} and docs[1].metadata is None
    assert docs[0].content() == "Cats Cats are small domesticated carnivorous mammals."
    assert docs[2].content() == DOCS[2]["text"]  # no title: the text alone


def test_beir_folder_and_integer_ids(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": 7, "text": "seven"}, {"_id": "8", "text": "eight"}])
    assert resolve_corpus(tmp_path) == (tmp_path / "corpus.jsonl", "beir")
    assert [d.id for d in iter_documents(tmp_path)] == ["7", "8"]


def test_plain_text_one_document_a_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("first document\nsecond document\n", encoding="utf-8")
    docs = list(iter_documents(path))
    assert [(d.id, d.text) for d in docs] == [("1", "first document"), ("2", "second document")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "x", "text": ', "not valid JSON"),
        ('["_id", "text"]', "expected a JSON object, got list"),
        ('{"text": "no id"}', 'missing "_id"'),
        ('{"_id": "  ", "text": "blank id"}', 'empty "_id"'),
        ('{"_id": true, "text": "bool id"}', '"_id" must be a string or an integer'),
        ('{"_id": "e", "text": "   ", "title": ""}', "document 'e': empty text"),
        ('{"_id": "n", "text": null}', '"text" must be a string'),
        ('{"_id": "t", "text": "ok", "title": 5}', '"title" must be a string'),
        ('{"_id": "m", "text": "ok", "metadata": [1]}', '"metadata" must be an object'),
    ],
)
def test_each_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", [DOCS[0], line, DOCS[1]])
    with pytest.raises(CorpusError) as err:
        scan_corpus(path)
    assert [line for line, _ in err.value.problems] == [2]
    assert "corpus.jsonl line 2: " in str(err.value)
    assert message in err.value.problems[0][1]


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", [DOCS[0], DOCS[1], DOCS[0]])
    with pytest.raises(CorpusError, match=r"line 3: duplicate id 'd1' \(first seen on line 1\)"):
        scan_corpus(path)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", ["{", DOCS[0], '{"text": "x"}', DOCS[0]])
    with pytest.raises(CorpusError) as err:
        scan_corpus(path)
    assert [line for line, _ in err.value.problems] == [1, 3, 4]


def test_blank_line_in_plain_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="docs.txt line 2: empty text"):
        scan_corpus(path)


def test_invalid_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(CorpusError, match="line 2: not valid UTF-8"):
        scan_corpus(path)


def test_empty_corpus_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="no documents"):
        scan_corpus(tmp_path / "corpus.jsonl")
    with pytest.raises(FileNotFoundError):
        scan_corpus(tmp_path / "absent.jsonl")


def test_a_line_with_an_unknown_field_is_refused_naming_it(tmp_path: Path) -> None:
    """As the write API refuses a misspelt field, so does a corpus line (it was dropped silently)."""
    from simsearch.data.corpus import CorpusError, scan_corpus

    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": "x", "metadata": {}}\n{"_id": "b", "text": "y", "tags": ["t"]}\n')
    with pytest.raises(CorpusError) as info:
        scan_corpus(path, "beir")
    assert "line 2" in str(info.value) and "unknown field 'tags'" in str(info.value)
