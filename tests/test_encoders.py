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


def test_torch_encode_gives_the_librarys_vectors(tiny_model: str) -> None:
    """The torch path runs the model's forward itself (for speed, issue #20): the vectors must be those of
    ``SentenceTransformer.encode``, in input order across batches, with dropout off even when a caller left
    the model in training mode, and with the model's default prompt applied as encode applies it."""
    import numpy as np

    encoder = BiEncoder.load(tiny_model, batch_size=4)
    model = encoder.model
    rng = random.Random(1)
    words = ["cat", "dog", "sat", "on", "the", "mat", "quickly", "tokyo", "bank", "river"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 25))) for _ in range(11)]

    def library() -> np.ndarray:
        return model.encode(texts, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)

    got = encoder.encode(texts)
    assert got.shape == (11, encoder.dim) and got.dtype == np.float32
    assert np.allclose(got, library(), atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(encoder.encode(texts[3:4])[0], got[3], atol=1e-5)  # alone or in a batch: the same

    model.train()  # dropout on: a forward pass in this mode would give other vectors
    assert np.allclose(encoder.encode(texts), got, atol=1e-5)
    assert not model.training

    model.prompts = {"query": "query: "}
    model.default_prompt_name = "query"
    prompted = encoder.encode(texts)
    assert np.allclose(prompted, library(), atol=1e-5)
    assert not np.allclose(prompted, got, atol=1e-3)
