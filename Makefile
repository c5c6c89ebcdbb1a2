# dockerfaasd — common tasks. Every target is a thin wrapper over go or hack/.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build run test unit e2e soak fuzz lint image docker-up bench clean

all: lint test

build: ## static binary in bin/
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/dockerfaasd ./cmd/dockerfaasd

run: ## the daemon with defaults (local Docker socket, state under STATE_DIR)
	CGO_ENABLED=0 go run ./cmd/dockerfaasd

test: ## everything, as CI runs it (needs a Docker Engine)
	go test -race -count=1 -timeout 50m ./...

unit: ## fast tests, no Docker needed
	go test -race -count=1 $$(go list ./... | grep -v /test/e2e)

e2e: ## end-to-end tests against the local Docker Engine
	go test -count=1 -timeout 50m -v ./test/e2e/

soak: ## long fault run: mixed workload with periodic kill -9 (SOAK_DURATION, default 10m), then the kill test mid-update
	SOAK=1 go test -count=1 -timeout 60m -v -run '^TestSoak$$' ./test/e2e/
	FAULT_FUNCTIONS=20 FAULT_STEPS=5 go test -count=1 -timeout 50m -v -run '^TestKillDuringConcurrentDeploys$$' ./test/e2e/

fuzz: ## every fuzz target for FUZZTIME each (default 10s)
	hack/fuzz.sh

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	go vet ./...

image: build ## container image of the daemon, from the static binary (no base image to pull)
	docker build -t dockerfaasd:$(VERSION) -f Dockerfile .

docker-up: ## install and start a Docker Engine (Debian), as CI does
	hack/docker-up.sh

bench: ## benchmarks against the physical limit → docs/performance.md (knobs: hack/bench/main.go)
	go run ./hack/bench

clean:
	rm -rf bin
