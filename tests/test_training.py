"""CoSENT for cross-encoders, the pair readers, and the two training jobs on a toy task."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from simsearch.data.pairs import PairDataError, read_pairs
from training.losses import CoSENTCrossEncoderLoss, cosent_ranking_loss
from training.recipe import TrainConfig

pytestmark = pytest.mark.slow  # trains models

# ---- the loss -------------------------------------------------------------------------------------------


def test_cosent_against_hand_computed_three_pairs() -> None:
    s = torch.tensor([0.5, 0.2, 0.9], dtype=torch.float64)
    y = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    # ordered (i, j) with y_i > y_j: (0, 1), (2, 0), (2, 1) -> exp(s_j - s_i) for each
    expected = math.log(1 + math.exp(0.2 - 0.5) + math.exp(0.5 - 0.9) + math.exp(0.2 - 0.9))
    assert cosent_ranking_loss(s, y, scale=1.0).item() == pytest.approx(expected, rel=1e-6)
    expected20 = math.log(1 + math.exp(20 * -0.3) + math.exp(20 * -0.4) + math.exp(20 * -0.7))
    assert cosent_ranking_loss(s, y, scale=20.0).item() == pytest.approx(expected20, rel=1e-6)


def test_cosent_label_direction_and_ties() -> None:
    y = torch.tensor([1.0, 0.0])
    right, wrong = torch.tensor([0.8, 0.1]), torch.tensor([0.1, 0.8])
    assert cosent_ranking_loss(right, y, 1.0) < cosent_ranking_loss(wrong, y, 1.0)
    # only the order of labels counts: any monotone relabelling gives the same loss
    assert cosent_ranking_loss(right, torch.tensor([5.0, -3.0]), 1.0) == cosent_ranking_loss(right, y, 1.0)
    # equal labels give no term: log(1) = 0
    assert cosent_ranking_loss(right, torch.tensor([2.0, 2.0]), 1.0).item() == 0.0


def test_cross_encoder_loss_uses_the_models_logits(tiny_model: str) -> None:
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(tiny_model, num_labels=1, max_length=32, device="cpu")
    model.eval()  # no dropout, so the forward pass is deterministic
    a, b = ["a cat sat", "stock prices", "rain falls"], ["a dog sat", "a red car", "it is raining"]
    labels = torch.tensor([3.0, 0.5, 4.0])
    logits = model.predict(list(zip(a, b, strict=True)), activation_fn=torch.nn.Identity(), convert_to_tensor=True)
    loss = CoSENTCrossEncoderLoss(model, scale=2.0)
    value = loss([a, b], labels)
    s = logits.tolist()
    terms = [math.exp(2.0 * (s[j] - s[i])) for i in range(3) for j in range(3) if labels[i] > labels[j]]
    assert value.item() == pytest.approx(math.log(1 + sum(terms)), rel=1e-5)
    value.backward()  # gradients reach the transformer
    assert model[0].model.classifier.weight.grad is not None
    assert loss.get_config_dict() == {"scale": 2.0} and "kexue.fm/archives/9341" in loss.citation


def test_cross_encoder_loss_rejects_wrong_shapes(tiny_model: str) -> None:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(tiny_model, num_labels=1, device="cpu")
    loss = CoSENTCrossEncoderLoss(model)
    with pytest.raises(ValueError, match="two text columns"):
        loss([["a"]], torch.tensor([1.0]))
    with pytest.raises(ValueError, match="one label per pair"):
        loss([["a", "b"], ["c", "d"]], torch.tensor([1.0]))


# ---- pair files -----------------------------------------------------------------------------------------


def test_generic_files_with_headers(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text('sentence1,sentence2,score\n"a, b",c,4.5\nd,e,1\n')
    (tmp_path / "p.jsonl").write_text('{"s1": "a", "s2": "b", "label": 1}\n{"s1": "c", "s2": "d", "label": 0}\n')
    (tmp_path / "p.tsv").write_text("x\ty\t0.5\n")
    csv_pairs = read_pairs(tmp_path / "p.csv")
    assert (csv_pairs.a, csv_pairs.b, csv_pairs.scores) == (["a, b", "d"], ["c", "e"], [4.5, 1.0])
    assert read_pairs(tmp_path / "p.jsonl").scores == [1.0, 0.0]
    assert read_pairs(tmp_path / "p.tsv").a == ["x"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tsv", "", "the file is empty"),
        ("short.tsv", "a\tb\t1\nc\td\n", "short.tsv line 2: expected at least 3 columns, got 2"),
        ("label.tsv", "a\tb\t1\nc\td\thigh\n", "label.tsv line 2: label 'high' is not a number"),
        ("nan.tsv", "a\tb\tnan\n", "line 1: label 'nan' is not a finite number"),
        ("blank.tsv", "a\t \t1\n", "blank.tsv line 1: empty text"),
        ("noscore.csv", "sentence1,sentence2\na,b\n", "no score column"),
        ("missing.jsonl", '{"s1": "a", "s2": "b", "label": 1}\n{"s1": "a", "label": 1}\n', "line 2: missing 's2'"),
        ("bad.jsonl", '{"s1": "a", "s2": "b", "label": "x"}\n', "line 1: label 'x' is not a number"),
    ],
)
def test_bad_pair_files_are_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(PairDataError, match=message):
        read_pairs(tmp_path / name)


def test_bad_training_file_on_the_command_line(tmp_path: Path, tiny_model: str, capsys) -> None:
    from training.train_bi import main

    (tmp_path / "train.tsv").write_text("a\tb\tyes\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--train", str(tmp_path / "train.tsv"), "--dev", str(tmp_path / "train.tsv"), "--model", tiny_model])
    assert exit_.value.code == 2
    assert "error: train.tsv line 1: label 'yes' is not a number" in capsys.readouterr().err


# ---- training on a toy task -----------------------------------------------------------------------------

ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "duck"]
VEHICLES = ["car", "bus", "train", "truck", "plane", "boat", "tram", "bike"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pairs of words: similar (1) when both are animals or both vehicles. A random model knows nothing of
    it, so the Spearman before training is near 0 and any gain comes from training."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("toy")
    rows = []
    for _ in range(360):
        g1 = rng.choice([ANIMALS, VEHICLES])
        same = rng.random() < 0.5
        g2 = g1 if same else (VEHICLES if g1 is ANIMALS else ANIMALS)
        w1 = rng.choice(g1)
        w2 = rng.choice([w for w in g2 if w != w1])
        rows.append(f"the {w1}\tthe {w2}\t{int(same)}")
    for name, part in (("train", rows[:240]), ("valid", rows[240:300]), ("test", rows[300:])):
        (folder / f"{name}.tsv").write_text("\n".join(part) + "\n")
    return folder


def toy_config(kind: str, loss: str, model: str, data: Path, out: Path, **extra) -> TrainConfig:
    return TrainConfig(
        kind=kind,
        loss=loss,
        base_model=model,
        data=data,
        output=out,
        name=f"{kind}-{loss}",
        epochs=extra.pop("epochs", 4),
        batch_size=16,
        lr=extra.pop("lr", 3e-3),
        warmup_ratio=0.0,
        max_length=16,
        evals=4,
        progress=False,
        **extra,
    )


@pytest.mark.parametrize("loss", ["cosent", "cosine", "softmax"])
def test_train_bi_learns_the_toy_task(tiny_model: str, toy_data: Path, tmp_path: Path, loss: str) -> None:
    import json

    from sentence_transformers import SentenceTransformer

    from training.train_bi import run

    result = run(toy_config("bi", loss, tiny_model, toy_data, tmp_path))
    report = json.loads((result.path / "report.json").read_text())
    assert report["test_spearman"] > report["test_spearman_before"] + 20, report
    losses = [p["loss"] for p in report["train_loss"]]
    assert losses[-1] < losses[0]
    assert report["dev_curve"][0]["step"] == 0 and len(report["dev_curve"]) >= 4
    assert report["data"]["train"]["pairs"] == 240 and report["config"]["seed"] == 42
    assert (result.path / "README.md").is_file() and not (result.path / "checkpoints").exists()
    # the saved model is the trained one
    texts = ["the cat", "the bus", "the duck"]
    reloaded = SentenceTransformer(str(result.path), device="cpu")
    np.testing.assert_allclose(reloaded.encode(texts), result.model.encode(texts), atol=1e-6)


@pytest.mark.parametrize("loss", ["cosent", "bce"])
def test_train_cross_learns_the_toy_task(tiny_model: str, toy_data: Path, tmp_path: Path, loss: str) -> None:
    import json

    from simsearch.models.cross_encoder import CrossScorer
    from training.train_cross import run

    result = run(toy_config("cross", loss, tiny_model, toy_data, tmp_path, epochs=10))
    report = json.loads((result.path / "report.json").read_text())
    assert report["test_spearman"] > 30 and report["dev_spearman"] > report["dev_spearman_before"] + 20, report
    losses = [p["loss"] for p in report["train_loss"]]
    assert losses[-1] < losses[0]
    pairs = [("the cat", "the dog"), ("the cat", "the bus")]
    reloaded = CrossScorer.load(str(result.path))
    expected = result.model.predict(pairs, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(reloaded.score(pairs), expected, atol=1e-5)
    assert reloaded.score(pairs)[0] > reloaded.score(pairs)[1]


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_frozen_token_embeddings_stay_as_they_were(tiny_model: str, toy_data: Path, tmp_path: Path, kind: str) -> None:
    """--freeze-embeddings: the saved model's token embeddings are the base model's, the rest of it trained
    (and still learns the toy task); without the setting the embeddings move."""
    from transformers import AutoModel

    from training.train_bi import run as run_bi
    from training.train_cross import run as run_cross

    run = run_bi if kind == "bi" else run_cross
    epochs = 4 if kind == "bi" else 10  # as in the tests above: a fresh head needs more

    def embeddings(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        m = AutoModel.from_pretrained(str(folder), local_files_only=True)
        return m.get_input_embeddings().weight.detach().clone(), m.encoder.layer[0].attention.self.query.weight

    before, layer_before = embeddings(tiny_model)
    frozen = run(
        toy_config(kind, "cosent", tiny_model, toy_data, tmp_path / "frozen", epochs=epochs, freeze_embeddings=True)
    )
    after, layer_after = embeddings(frozen.path)
    assert torch.equal(after, before)
    assert not torch.allclose(layer_after, layer_before)
    report = json.loads((frozen.path / "report.json").read_text())
    assert report["config"]["freeze_embeddings"] is True
    assert report["dev_spearman"] > report["dev_spearman_before"] + 20, report
    moved = run(toy_config(kind, "cosent", tiny_model, toy_data, tmp_path / "trained", epochs=epochs))
    assert not torch.allclose(embeddings(moved.path)[0], before)


# ---- silver pairs from a teacher bi-encoder ---------------------------------------------------------------


def test_augment_pairs_adds_new_teacher_labelled_pairs(tiny_model: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from training.augment_pairs import main

    gold = [
        ("a man plays a guitar", 'he said "no" twice', 4.0),
        ("a woman slices an onion", "a man  plays a guitar", 1.5),  # two spaces: the same sentence as above
        ("the stock market fell", r"prices dropped \ sharply", 2.1111111111111),
        ("a dog runs in a field", "a puppy plays on grass", 5.0),
        ("it is raining in paris", "the stock market fell", 0.0),
    ]
    dev = [("a dog runs in a field", "the stock market fell", 1.0)]
    test = [("a puppy plays on grass", "a woman slices an onion", 0.5)]
    data = tmp_path / "sts"
    data.mkdir()
    for name, rows in (("train", gold), ("valid", dev), ("test", test)):
        (data / f"{name}.tsv").write_text("".join(f"{a}\t{b}\t{s!r}\n" for a, b, s in rows))
    out = tmp_path / "silver.tsv"
    assert main(["--data", str(data), "--teacher", tiny_model, "--neighbours", "2", "--random", "10",
                 "--out", str(out)]) == 0  # fmt: skip
    pairs = read_pairs(out)
    rows = list(zip(pairs.a, pairs.b, pairs.scores, strict=True))
    # the gold rows first, whitespace made single, scores exact (quotes and backslashes survive the TSV)
    clean = [(" ".join(a.split()), " ".join(b.split()), s) for a, b, s in gold]
    assert rows[: len(gold)] == clean
    silver = rows[len(gold) :]
    sentences = {t for a, b, _ in clean for t in (a, b)}
    assert len(sentences) == 8  # 9 spellings: the two of "a man plays a guitar" are one sentence
    keys = [frozenset((a, b)) for a, b, _ in silver]
    known = {frozenset((a, b)) for a, b, _ in clean + dev + test}
    assert silver and len(set(keys)) == len(keys)  # no pair twice, in either order
    assert not set(keys) & known  # nothing gold, no dev or test pair
    assert all(len(k) == 2 for k in keys)  # no sentence paired with itself
    assert {t for a, b, _ in silver for t in (a, b)} <= sentences  # only the training sentences
    assert len(silver) <= 28 - 5 - 2  # 8 sentences: 28 unordered pairs, less 5 gold, 1 dev and 1 test
    # a silver label is the teacher's cosine, clipped to [0, 1] and put on the gold scale (0-5 here)
    teacher = SentenceTransformer(tiny_model, device="cpu")
    for a, b, label in silver:
        ea, eb = teacher.encode([a, b], normalize_embeddings=True)
        assert label == pytest.approx(5.0 * min(max(float(ea @ eb), 0.0), 1.0), abs=1e-3)


def test_augment_pairs_pairs_each_sentence_with_its_nearest_neighbour(tiny_model: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from training.augment_pairs import main

    texts = [f"sentence number {w}" for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")]
    data = tmp_path / "sts"
    data.mkdir()
    (data / "train.tsv").write_text("".join(f"{texts[i]}\t{texts[i + 4]}\t3\n" for i in range(4)))
    out = tmp_path / "silver.tsv"
    assert main(["--data", str(data), "--teacher", tiny_model, "--neighbours", "1", "--random", "0",
                 "--out", str(out)]) == 0  # fmt: skip
    pairs = read_pairs(out)
    silver = {frozenset(p) for p in zip(pairs.a[4:], pairs.b[4:], strict=True)}
    emb = SentenceTransformer(tiny_model, device="cpu").encode(texts, normalize_embeddings=True)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -2)
    gold = {frozenset((texts[i], texts[i + 4])) for i in range(4)}
    for i, text in enumerate(texts):
        nearest = frozenset((text, texts[int(np.argmax(sims[i]))]))
        assert nearest in silver or nearest in gold  # every sentence's nearest neighbour, unless already gold
    assert len(silver) <= len(texts)  # one neighbour each, no random pairs


def test_augment_pairs_rejects_negative_counts(tiny_model: str, tmp_path: Path, capsys) -> None:
    from training.augment_pairs import main

    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), "--teacher", tiny_model, "--random", "-1", "--out", str(tmp_path / "o.tsv")])
    assert exit_.value.code == 2 and "--random" in capsys.readouterr().err
    assert not (tmp_path / "o.tsv").exists()


def test_augment_pairs_isotonic_labels_follow_the_gold_scores_of_the_teachers_cosines(
    tiny_model: str, tmp_path: Path
) -> None:
    """--calibrate isotonic: a silver label is the increasing fit of the gold training scores on the teacher's
    cosines of those same pairs, evaluated at the silver pair's cosine; it keeps the teacher's order and the
    gold range, and is not the linear map."""
    from sentence_transformers import SentenceTransformer
    from sklearn.isotonic import IsotonicRegression

    from training.augment_pairs import main

    words = ["red", "blue", "green", "cold", "warm", "fast", "slow", "tall", "short", "loud"]
    texts = [f"the {w} thing is here" for w in words]
    gold = [(texts[i], texts[(i * 3 + 1) % 10], float(i % 6)) for i in range(10)]
    data = tmp_path / "sts"
    data.mkdir()
    (data / "train.tsv").write_text("".join(f"{a}\t{b}\t{s!r}\n" for a, b, s in gold))
    out = tmp_path / "silver.tsv"
    assert main(["--data", str(data), "--teacher", tiny_model, "--neighbours", "1", "--random", "15",
                 "--calibrate", "isotonic", "--out", str(out)]) == 0  # fmt: skip
    pairs = read_pairs(out)
    silver = list(zip(pairs.a, pairs.b, pairs.scores, strict=True))[len(gold) :]
    assert len(silver) >= 10
    teacher = SentenceTransformer(tiny_model, device="cpu")

    def cos(a: str, b: str) -> float:
        ea, eb = teacher.encode([a, b], normalize_embeddings=True)
        return float(ea @ eb)

    fit = IsotonicRegression(y_min=0.0, y_max=5.0, out_of_bounds="clip")
    fit.fit([cos(a, b) for a, b, _ in gold], [s for _, _, s in gold])
    cosines = [cos(a, b) for a, b, _ in silver]
    labels = [s for _, _, s in silver]
    assert labels == pytest.approx(fit.predict(cosines).tolist(), abs=2e-3)
    assert all(0.0 <= s <= 5.0 for s in labels)
    by_cosine = [s for _, s in sorted(zip(cosines, labels, strict=True))]
    assert by_cosine == sorted(by_cosine)  # the teacher's order is kept
    linear = [5.0 * min(max(c, 0.0), 1.0) for c in cosines]
    assert max(abs(s - v) for s, v in zip(labels, linear, strict=True)) > 0.1


ZH_ANIMALS = ["猫", "狗", "马", "牛", "羊", "猪", "鸭", "鸡"]
ZH_VEHICLES = ["汽车", "公交", "火车", "卡车", "飞机", "轮船", "电车", "单车"]


def test_a_model_trained_on_chinese_pairs_is_registered_and_served(
    tiny_model: str, tmp_path: Path, built_index: Path
) -> None:
    """The train -> serve loop: CoSENT on Chinese pairs (training.train_bi), the output registered by name
    (SIMSEARCH_MODELS), a Chinese collection created with it and the chinese analyser, filled and searched
    over HTTP; the collection records the trained weights' hash, and dense search finds the same group."""
    import shutil

    from fastapi.testclient import TestClient

    from service.app import create_app
    from simsearch.client import Client
    from simsearch.models.files import model_hash
    from simsearch.settings import Settings
    from training.train_bi import run

    rng = random.Random(1)
    data = tmp_path / "zh-pairs"
    data.mkdir()
    rows = []
    for _ in range(360):
        g1 = rng.choice([ZH_ANIMALS, ZH_VEHICLES])
        same = rng.random() < 0.5
        g2 = g1 if same else (ZH_VEHICLES if g1 is ZH_ANIMALS else ZH_ANIMALS)
        w1 = rng.choice(g1)
        rows.append(f"一只{w1}\t一只{rng.choice([w for w in g2 if w != w1])}\t{int(same)}")
    for name, part in (("train", rows[:240]), ("valid", rows[240:300]), ("test", rows[300:])):
        (data / f"{name}.tsv").write_text("\n".join(part) + "\n")
    result = run(toy_config("bi", "cosent", tiny_model, data, tmp_path))
    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    settings = Settings(
        bi_model=tiny_model,
        index_dir=root,
        index_name=built_index.name,
        anonymous_writes=True,
        models={"zh-cosent": {"path": str(result.path), "languages": ["zh"]}},
    )
    with TestClient(create_app(settings)) as http:
        c = Client(http=http)
        c.create_collection("zh", model="zh-cosent", analyser="chinese")
        docs = [{"id": w, "text": f"这是一只{w}"} for w in ZH_ANIMALS + ZH_VEHICLES]
        c.upsert("zh", docs)
        info = c.get_collection("zh")
        assert info.models["bi"]["sha256"] == model_hash(str(result.path)) and info.warnings == []
        right = 0
        for group in (ZH_ANIMALS, ZH_VEHICLES):
            for w in group[:4]:
                top = [h.id for h in c.search("zh", f"一只{w}", k=4).hits if h.id != w][:3]
                right += sum(t in group for t in top)
        assert right >= 0.8 * 24, right  # trained: most neighbours are of the same group
        assert c.search("zh", "汽车", mode="lexical", k=1).hits[0].id == "汽车"
