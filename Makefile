# Thin wrappers around the commands the README gives.
STACK ?= production
OUT   ?= render/$(STACK)
GOLANGCI_LINT_VERSION := v2.15.0
ACTIONLINT_VERSION    := v1.7.12
TOOLS := $(CURDIR)/bin/tools

.PHONY: build test lint render preflight preview up tools vault integration

# The deploy binary Pulumi.yaml's runtime.options.binary points at: built
# once, stripped of debug info, instead of compiled by every preview.
build:
	go build -trimpath -ldflags="-s -w" -o bin/secrets-platform .

test:
	go test ./...

# The Vault server the integration tests run (scripts/build-vault.sh; a
# no-op when bin/tools/vault already is the pinned version).
vault:
	scripts/build-vault.sh

# Real Vault processes on loopback against the rendered HCL, certificates and
# scripts (tests/integration, build tag integration).
integration: vault
	go test -tags integration -count=1 -parallel 4 ./tests/integration/...

render:
	go run ./cmd/render --stack $(STACK) --out $(OUT)

# Read-only checks of what the stack needs from its cluster (cmd/preflight;
# README, "Deploying for real").
preflight:
	go run ./cmd/preflight --stack $(STACK)

tools:
	GOBIN=$(TOOLS) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	GOBIN=$(TOOLS) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: tools
	$(TOOLS)/golangci-lint run ./...
	$(TOOLS)/actionlint

preview: build
	pulumi preview --stack $(STACK)

up: build
	pulumi up --stack $(STACK)
