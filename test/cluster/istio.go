package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/herald-rollouts/herald/config"
)

// istioCRDKinds are the Istio resources Herald's istio router writes or users reference.
var istioCRDKinds = []string{"virtualservices", "destinationrules", "gateways"}

// IstioCRDs reads Istio's networking CRDs (VirtualService, DestinationRule, Gateway) from the
// istio.io/api module that Herald's go.mod already requires: the same definitions Istio
// installs, with no Istio control plane (the data plane is simulated, see test/traffic).
func IstioCRDs(ctx context.Context) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	dir, err := goModDir(ctx, "istio.io/api")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		return nil, fmt.Errorf("reading Istio's CRDs: %w", err)
	}
	all, err := decodeCRDs(raw)
	if err != nil {
		return nil, fmt.Errorf("Istio's CRDs: %w", err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range all {
		if crd.Spec.Group == "networking.istio.io" && slices.Contains(istioCRDKinds, crd.Spec.Names.Plural) {
			crds = append(crds, crd)
		}
	}
	if len(crds) != len(istioCRDKinds) {
		return nil, fmt.Errorf("found %d of Istio's %d networking CRDs in istio.io/api", len(crds), len(istioCRDKinds))
	}
	return crds, nil
}

// goModDir returns the directory of a module that Herald's go.mod requires, in the module
// cache. "go mod download" (not "go list -m"): it reports the directory even when only the
// module's go.mod hash is in go.sum, and fetches it from the module proxy if needed.
func goModDir(ctx context.Context, module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the %s module: %w", module, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("locating the %s module: %w %s", module, err, mod.Error)
	}
	return mod.Dir, nil
}

// InstallIstioCRDs applies Istio's networking CRDs and waits until they are served.
func (c *Cluster) InstallIstioCRDs(ctx context.Context) error {
	c.progress.printf("installing Istio's networking CRDs")
	crds, err := IstioCRDs(ctx)
	if err != nil {
		return err
	}
	return config.InstallCRDs(ctx, c.Config, crds)
}
