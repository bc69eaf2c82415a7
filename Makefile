# Herald — progressive delivery for Kubernetes, drop-in for flagger.app/v1beta1.
# Every tool and binary this file needs is built from the Go module proxy into bin/ (ignored);
# the control-plane binaries are cached per version under $(HERALD_CACHE_DIR) so a fresh clone
# on the same machine reuses them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
GO ?= go
BIN := $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
CLUSTER := $(GO) run ./test/cluster/cmd/cluster
# envtest suites use the same etcd and kube-apiserver as the local control plane.
export KUBEBUILDER_ASSETS ?= $(BIN)/controlplane

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC (controller-gen), webhook configurations (webhooks.Configurations) into config/ and charts/herald, config/manager from the chart, the README's values table.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=herald-manager paths=./controllers/... paths=./webhooks/... paths=./cmd/... output:rbac:artifacts:config=config/rbac
	$(GO) run ./hack/webhook-manifests config/webhook/manifests.yaml
	$(GO) run ./hack/chart

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when generated files (deepcopy, CRDs, RBAC, webhooks, chart, values table) are not current.
	@sum() { find api config charts README.md -type f -print0 | sort -z | xargs -0 sha256sum; }; \
	before=$$(sum); $(MAKE) --no-print-directory generate manifests >/dev/null; after=$$(sum); \
	if [ "$$before" != "$$after" ]; then diff <(echo "$$before") <(echo "$$after") || true; \
	  echo "generated files were stale (now regenerated): review and commit them"; exit 1; fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: verify-fmt
verify-fmt: ## Fail when a Go file is not gofmt-formatted (CI).
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run make fmt):"; echo "$$unformatted"; exit 1; fi

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	@echo "building golangci-lint $(GOLANGCI_LINT_VERSION) (first time only, about 3 minutes)"
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

##@ Local control plane

.PHONY: controlplane
controlplane: ## Build (or reuse from the cache) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok, prometheus, Flux's controllers.
	$(CLUSTER) build

.PHONY: cluster-up
cluster-up: ## Start the local control plane in the background; prints the kubeconfig path (bin/kubeconfig). FLUX=1 also runs Flux and a Git server.
	$(CLUSTER) up $(if $(filter 1 true yes,$(FLUX)),--flux)

.PHONY: cluster-down
cluster-down: ## Stop every process that cluster-up started.
	$(CLUSTER) down

##@ Run

.PHONY: build
build: ## Build bin/herald and the kubectl plugin bin/kubectl-herald (put bin/ on PATH for `kubectl herald`).
	$(GO) build -o $(BIN)/herald ./cmd/herald
	$(GO) build -o $(BIN)/kubectl-herald ./cmd/kubectl-herald

# The port of Herald's webhook server in `make run`: the first free one from 9443 unless given.
WEBHOOK_PORT ?=

.PHONY: run
run: build ## Run Herald in the foreground against the control plane of 'make cluster-up', its webhooks registered on loopback.
	@test -f $(BIN)/herald.kubeconfig || { echo "no cluster: run 'make cluster-up' first"; exit 1; }
	@port=$(WEBHOOK_PORT); if [ -z "$$port" ]; then port=9443; \
	  while (exec 3<>/dev/tcp/127.0.0.1/$$port) 2>/dev/null; do port=$$((port + 1)); done; fi; \
	echo "Herald: webhooks on https://localhost:$$port, registered in herald-mutating and herald-validating"; \
	exec $(BIN)/herald --kubeconfig=$(BIN)/herald.kubeconfig --controller-username=herald --install-crds \
	  --metrics-bind-address=127.0.0.1:0 --metrics-secure=false --health-probe-bind-address=127.0.0.1:0 \
	  --webhook-host=127.0.0.1 --webhook-port=$$port --webhook-url=https://localhost:$$port \
	  --cert-dir=$(BIN)/run-certs --log-encoding=console

PROVIDER ?= istio
.PHONY: demo
demo: ## Local control plane, Prometheus, Herald and simulated traffic: a promotion, a rollback and an A/B test (about 3 minutes warm); PROVIDER=gatewayapi routes them through a Gateway API HTTPRoute instead of Istio.
	$(GO) run ./test/demo -provider=$(PROVIDER)

##@ Images

# The version stamped into the binaries and labels; a release passes its tag (v1.2.3).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# A repository prefix to push the images to (e.g. ghcr.io/herald-rollouts); empty: no push.
REGISTRY ?=

.PHONY: images
images: ## OCI images of the manager and the load tester (linux/amd64 + linux/arm64) in bin/images, without Docker; REGISTRY=<prefix> also pushes them.
	$(GO) run ./hack/images -out $(BIN)/images -version "$(VERSION)" -registry "$(REGISTRY)" \
	  -revision "$$(git rev-parse HEAD 2>/dev/null)" -created "$$(git log -1 --format=%ct 2>/dev/null)"

##@ Test

.PHONY: test
test: controlplane verify-generated verify-fmt vet lint ## Everything: generated files, format, lint, unit tests and Ginkgo suites against the real local control plane.
	$(GO) test -count=1 -timeout 30m ./...

# Packages whose tests need the local control plane.
CLUSTER_SUITES := /test/e2e$$|/test/e2e/gatewayapi$$|/test/crd$$|/test/bench$$|/test/cutover$$

.PHONY: unit
unit: ## Fast: the unit tests alone (-short), without the local control plane's suites.
	$(GO) test -short -count=1 $$($(GO) list ./... | grep -Ev '$(CLUSTER_SUITES)')

SEEDS ?= 1 2 3
FAULT_ROUNDS ?= 2
.PHONY: faults
faults: controlplane ## The fault-injection suite once per seed of SEEDS (default "1 2 3"), FAULT_ROUNDS rounds of faults each; results in bin/faults/seed-<n>/.
	@set -e; for seed in $(SEEDS); do \
	  echo "==> faults seed $$seed ($(FAULT_ROUNDS) rounds)"; \
	  $(GO) test -count=1 -timeout 60m ./test/faults -faults.seed=$$seed -faults.rounds=$(FAULT_ROUNDS) -ginkgo.v; \
	  echo "==> seed $$seed passed: bin/faults/seed-$$seed/figures.md"; \
	done

.PHONY: bench
bench: controlplane ## Benchmarks: handler cost (ns/op, allocs/op) and latency through the real kube-apiserver.
	HERALD_SCALE_APPLY_SAMPLES=1 $(GO) test -run '^$$' -bench . -benchmem ./...

SCALE_N ?= 100 300 1000
.PHONY: bench-scale
bench-scale: controlplane ## Scale benchmark, side by side with Flagger 1.44: N Canaries for each N of SCALE_N (default "100 300 1000"); table and plot in bin/bench/scale/.
	HERALD_SCALE_N="$(SCALE_N)" HERALD_SCALE_IDLE=60s $(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime=1x -timeout 6h ./test/bench

FUZZTIME ?= 60s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (CI runs only their seed corpus, inside make test).
	@set -e; for target in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for fn in $$(grep -h '^func Fuzz' $$target/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "==> $$fn in $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$target; \
	  done; done
