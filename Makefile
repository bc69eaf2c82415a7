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
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC (controller-gen) and webhook configurations (webhooks.Configurations) into config/.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=herald-manager paths=./controllers/... paths=./webhooks/... paths=./cmd/... output:rbac:artifacts:config=config/rbac
	$(GO) run ./hack/webhook-manifests config/webhook/manifests.yaml

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when generated files (deepcopy, CRDs, RBAC) are not current.
	@sum() { find api config -type f -print0 | sort -z | xargs -0 sha256sum; }; \
	before=$$(sum); $(MAKE) --no-print-directory generate manifests >/dev/null; after=$$(sum); \
	if [ "$$before" != "$$after" ]; then diff <(echo "$$before") <(echo "$$after") || true; \
	  echo "generated files were stale (now regenerated): review and commit them"; exit 1; fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

##@ Local control plane

.PHONY: controlplane
controlplane: ## Build (or reuse from the cache) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok, prometheus.
	$(CLUSTER) build

.PHONY: cluster-up
cluster-up: ## Start the local control plane in the background; prints the kubeconfig path (bin/kubeconfig).
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop every process that cluster-up started.
	$(CLUSTER) down

##@ Run

.PHONY: build
build: ## Build bin/herald.
	$(GO) build -o $(BIN)/herald ./cmd/herald

.PHONY: run
run: build ## Run Herald in the foreground against the control plane of 'make cluster-up'.
	$(BIN)/herald --kubeconfig=$(BIN)/kubeconfig --install-crds --metrics-bind-address=127.0.0.1:0 --health-probe-bind-address=127.0.0.1:0

.PHONY: demo
demo: ## Local control plane, Prometheus, Herald and simulated Istio traffic: a promotion, a rollback and an A/B test (about 3 minutes warm).
	$(GO) run ./test/demo

##@ Test

.PHONY: test
test: controlplane verify-generated vet ## Unit tests and Ginkgo suites against the real local control plane.
	$(GO) test -count=1 -timeout 30m ./...

.PHONY: bench
bench: controlplane ## Benchmarks: handler cost (ns/op, allocs/op) and latency through the real kube-apiserver.
	$(GO) test -run '^$$' -bench . -benchmem ./...

FUZZTIME ?= 60s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (CI runs only their seed corpus, inside make test).
	@set -e; for target in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for fn in $$(grep -h '^func Fuzz' $$target/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "==> $$fn in $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$target; \
	  done; done
