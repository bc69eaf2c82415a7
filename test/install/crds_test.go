package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/herald-rollouts/herald/test/cluster"
)

const controllerTools = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"

// apiTypes are Go API packages of another project whose CRDs the tests need.
type apiTypes struct {
	// key names the cache directory.
	key string
	// modules are the Go modules (path version) that hold the packages.
	modules []string
	// packages are the API packages to generate CRDs from.
	packages []string
	// files are the CRD files wanted from controller-gen's output.
	files []string
}

// The Prometheus Operator's PodMonitor and ServiceMonitor, which the chart renders.
var monitoringAPI = apiTypes{
	key:      "monitoring-crds-v0.95.2",
	modules:  []string{"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring v0.95.2"},
	packages: []string{"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"},
	files:    []string{"monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_servicemonitors.yaml"},
}

// Flux's sources, Kustomization and HelmRelease, which the README's Flux manifests use
// (helm-controller/api v1.6.5: v1.7 needs Go 1.27).
var fluxAPI = apiTypes{
	key: "flux-crds-v1.9.6",
	modules: []string{
		"github.com/fluxcd/source-controller/api v1.9.6",
		"github.com/fluxcd/kustomize-controller/api v1.9.6",
		"github.com/fluxcd/helm-controller/api v1.6.5",
	},
	packages: []string{
		"github.com/fluxcd/source-controller/api/v1",
		"github.com/fluxcd/kustomize-controller/api/v1",
		"github.com/fluxcd/helm-controller/api/v2",
	},
	files: []string{
		"source.toolkit.fluxcd.io_gitrepositories.yaml", "source.toolkit.fluxcd.io_ocirepositories.yaml",
		"kustomize.toolkit.fluxcd.io_kustomizations.yaml", "helm.toolkit.fluxcd.io_helmreleases.yaml",
	},
}

// crdsOf returns the CRDs of api, generated with controller-gen from its Go types in a
// throwaway module (as those projects generate their own) and cached next to the control
// plane's binaries: the real schemas, with nothing fetched but Go modules.
func crdsOf(ctx context.Context, api apiTypes) []*apiextensionsv1.CustomResourceDefinition {
	cache, err := cluster.CacheDir()
	Expect(err).NotTo(HaveOccurred())
	dir := filepath.Join(cache, api.key)
	if _, err := os.Stat(filepath.Join(dir, api.files[len(api.files)-1])); err != nil {
		generateCRDs(ctx, api, dir)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range api.files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		Expect(err).NotTo(HaveOccurred())
		crd := &apiextensionsv1.CustomResourceDefinition{}
		Expect(yaml.Unmarshal(b, crd)).To(Succeed())
		crds = append(crds, crd)
	}
	return crds
}

func generateCRDs(ctx context.Context, api apiTypes, dir string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	mod, err := os.MkdirTemp("", "herald-crds-")
	Expect(err).NotTo(HaveOccurred())
	defer os.RemoveAll(mod)
	gomod := "module herald.local/crds\n\ngo 1.26.0\n\nrequire (\n\t" + strings.Join(api.modules, "\n\t") + "\n)\n"
	imports := "package tools\n\nimport (\n"
	for _, p := range api.packages {
		imports += "\t_ \"" + p + "\"\n"
	}
	imports += ")\n"
	Expect(os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(mod, "tools.go"), []byte(imports), 0o644)).To(Succeed())
	out := filepath.Join(mod, "out")
	gen := []string{"run", controllerTools, "crd:crdVersions=v1,maxDescLen=0"}
	for _, p := range api.packages {
		gen = append(gen, "paths="+p)
	}
	gen = append(gen, "output:crd:dir="+out)
	for _, args := range [][]string{{"mod", "tidy"}, gen} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = mod
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		Expect(cmd.Run()).To(Succeed(), "go %v:\n%s", args, buf.String())
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	Expect(os.MkdirAll(tmp, 0o755)).To(Succeed())
	defer os.RemoveAll(tmp)
	for _, f := range api.files {
		b, err := os.ReadFile(filepath.Join(out, f))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(tmp, f), b, 0o644)).To(Succeed())
	}
	_ = os.RemoveAll(dir)
	Expect(os.Rename(tmp, dir)).To(Succeed())
}
