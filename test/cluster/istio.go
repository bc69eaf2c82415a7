package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/herald-rollouts/herald/config"
)

// istioCRDKinds are the Istio resources Herald's istio router writes or users reference.
var istioCRDKinds = []string{"virtualservices", "destinationrules", "gateways"}

// IstioCRDs reads Istio's networking CRDs (VirtualService, DestinationRule, Gateway) from the
// istio.io/api module that Herald's go.mod already requires: the same definitions Istio
// installs, with no Istio control plane (the data plane is simulated, see test/traffic).
func IstioCRDs(ctx context.Context) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	// "go mod download" (not "go list -m"): it reports the directory even when only the
	// module's go.mod hash is in go.sum, and fetches it from the module proxy if needed.
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "istio.io/api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating the istio.io/api module: %w", err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return nil, fmt.Errorf("locating the istio.io/api module: %v %s", err, mod.Error)
	}
	raw, err := os.ReadFile(filepath.Join(mod.Dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		return nil, fmt.Errorf("reading Istio's CRDs: %w", err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 1<<20)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decoding Istio's CRDs: %w", err)
		}
		if crd.Spec.Group == "networking.istio.io" && slices.Contains(istioCRDKinds, crd.Spec.Names.Plural) {
			crds = append(crds, &crd)
		}
	}
	if len(crds) != len(istioCRDKinds) {
		return nil, fmt.Errorf("found %d of Istio's %d networking CRDs in istio.io/api", len(crds), len(istioCRDKinds))
	}
	return crds, nil
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
