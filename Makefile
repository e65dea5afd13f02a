# The two commands a newcomer needs are in the README: `make run` and `make test`.
GO ?= go

.PHONY: run test build bench fuzz snapshots

run: ## the MCP server over stdio on the embedded local backend
	$(GO) run ./cmd/neonguard serve

test: ## everything the tests need (npm packages of the TypeScript e2e client), then all tests under -race
	scripts/test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/neonguard ./cmd/neonguard

bench: ## the benchmarks whose figures the README reports
	$(GO) test -run '^$$' -bench . -benchmem ./internal/app ./cmd/neonguard ./internal/store ./internal/neon

fuzz: ## a short fuzzing session of argument decoding
	$(GO) test -run '^$$' -fuzz FuzzDecodeArgs -fuzztime 60s ./tools

snapshots: ## rewrite the golden tool schemas after an intended change
	UPDATE_TOOLSNAPS=1 $(GO) test ./tools
