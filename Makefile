# Sekisho — the two commands in the README are `make demo` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: demo test build bench fuzz lint

demo: ## build and start the demo on 127.0.0.1:8080
	$(GO) run ./cmd/sekisho demo

test: ## vet + every test with the race detector (services skip unless present; CI requires them)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 40m $(PKGS)

build:
	$(GO) build -trimpath -o bin/sekisho ./cmd/sekisho

bench: build ## load harness: Sekisho vs a plain httputil.ReverseProxy (needs wrk)
	$(GO) run ./bench/harness

fuzz: ## run every fuzz target for a bounded time each
	./bench/fuzz-all.sh
