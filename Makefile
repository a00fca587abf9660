# Geode's build targets. The README's quick start uses `make demo` and `make test`.
GO        ?= go
BIN       ?= bin/geode
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build demo test lint e2e bench bench-cp fuzz docker clean

build:
	$(GO) build -o $(BIN) ./cmd/geode

demo:
	$(GO) run ./cmd/geode demo

# The whole test suite, race detector on: what CI runs.
test:
	$(GO) test -race -timeout 15m ./...

e2e:
	$(GO) test -race -timeout 10m ./e2e/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...
	./.ci/house-rules

# Short fuzzing of every fuzz target (seed corpora always run as part of `make test`).
fuzz:
	./.ci/fuzz 1000000x

bench:
	./e2e/bench/run.sh

# Control-plane fan-out to 1,000 and 10,000 simulated ADS clients (issue 4); rewrites its BENCHMARKS.md section.
bench-cp:
	$(GO) run ./controlplane/bench -n 1000,10000 -mode sotw,delta -rounds 5 -benchmarks BENCHMARKS.md

docker:
	docker build -t geode:dev .

clean:
	rm -rf bin
