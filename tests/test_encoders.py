"""The truncation report: the byte-length shortcut never hides a text the tokenizer would cut."""

from __future__ import annotations

import random

from simsearch.models.bi_encoder import BiEncoder, flag_too_long
from tests.conftest import TINY_MAX_SEQ_LENGTH


def test_flags_match_the_tokenizer(tiny_encoder: BiEncoder) -> None:
    tok = tiny_encoder.model.tokenizer
    rng = random.Random(0)
    words = ["cat", "naïve", "東京", "übermäßig", "x", "supercalifragilistic", "🙂", "a-b", "3.14"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    limit = TINY_MAX_SEQ_LENGTH
    expected = [
        len(ids) > limit for ids in tok(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    ]
    assert flag_too_long(texts, limit, tok) == expected
    assert any(expected) and not all(expected)
    pairs = list(zip(texts[::2], texts[1::2], strict=True))
    ids = tok([a for a, _ in pairs], [b for _, b in pairs], truncation=False, verbose=False)["input_ids"]
    assert flag_too_long(pairs, limit, tok) == [len(x) > limit for x in ids]
