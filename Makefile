# Cairn's everyday commands. `make help` lists them.
GO ?= go

.PHONY: help run test race e2e e2e-docker image bench bench-3 build fuzz

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## a single-node cluster on 127.0.0.1:8080, data in ./data
	$(GO) run ./cmd/node

test: ## the fast test suite (what CI runs first)
	$(GO) test ./...

race: ## the fast suite under the race detector
	$(GO) test -race ./...

e2e: ## the robustness suite on real processes (kill -9, pause, restart)
	CAIRN_E2E=1 $(GO) test -v -timeout 15m ./e2e/

e2e-docker: ## the chaos suite against the docker-compose cluster (needs Docker, ~8 min)
	scripts/e2e-docker.sh

image: ## the container image cairn:dev (static binary, FROM scratch)
	scripts/build-image.sh

bench: ## write benchmark against a node at 127.0.0.1:8080
	$(GO) run ./cmd/bench -mode write -clients 64 -duration 20s

bench-3: ## write benchmark on a fresh 3-node loopback cluster (scripts/bench-local.sh)
	scripts/bench-local.sh -n 3 -- -mode write -clients 64 -duration 20s

build: ## static binaries in ./bin: cairn-node (the server), cairn (the CLI), cairn-bench
	CGO_ENABLED=0 $(GO) build -o bin/cairn-node ./cmd/node
	CGO_ENABLED=0 $(GO) build -o bin/cairn ./cmd/cairn
	CGO_ENABLED=0 $(GO) build -o bin/cairn-bench ./cmd/bench

fuzz: ## run every fuzz target for 30 s each
	$(GO) test -run='^$$' -fuzz=FuzzDecoder -fuzztime=30s ./internal/wire/
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=30s ./fsm/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeTx -fuzztime=30s ./api/
