# The two commands a newcomer needs are in the README: `make run` and `make test`.
GO ?= go
# Recursive makes would print "make[1]: Entering directory" on stdout.
MAKEFLAGS += --no-print-directory

.PHONY: run test build bench fuzz snapshots

# stdout is the MCP channel: make must not echo the recipe there (`@`), nor print anything else
# (`make -C DIR run` prints "Entering directory" before reading this file: use `make -s -C DIR run`).
run: ## the MCP server over stdio on the embedded local backend
	@$(GO) run ./cmd/neonguard serve

test: ## everything the tests need (npm packages of the TypeScript e2e client), then all tests under -race
	scripts/test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/neonguard ./cmd/neonguard

bench: ## the benchmarks whose figures docs/benchmarks.md reports
	$(GO) test -run '^$$' -bench GuardAndMCP -benchtime 2000x ./internal/server
	$(GO) test -run '^$$' -bench Startup -benchtime 20x ./cmd/neonguard
	$(GO) test -run '^$$' -bench DataPlane -benchtime 5x ./internal/app
	$(GO) test -run '^$$' -bench 'RunSQLSelect1|DirectPgxSelect1|DescribeSchema50' -benchtime 200x ./internal/app

fuzz: ## a short fuzzing session of argument decoding
	$(GO) test -run '^$$' -fuzz FuzzDecodeArgs -fuzztime 60s ./tools

snapshots: ## rewrite the golden tool schemas after an intended change
	UPDATE_TOOLSNAPS=1 $(GO) test ./tools
