package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/herald-rollouts/herald/config"
)

// gatewayAPIRoutes are the CRDs Herald's gatewayapi router writes; GatewayAPICRDs fails
// without them.
var gatewayAPIRoutes = []string{"httproutes", "grpcroutes"}

// GatewayAPICRDs reads the standard channel of the Gateway API's CRDs (GatewayClass, Gateway,
// HTTPRoute, GRPCRoute, ReferenceGrant, ...) from the sigs.k8s.io/gateway-api module that
// Herald's go.mod requires: the definitions an implementation installs, at the version Herald
// is built against, with no implementation behind them (the data plane is simulated, see
// test/traffic).
func GatewayAPICRDs(ctx context.Context) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	dir, err := goModDir(ctx, "sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "*.yaml"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading the Gateway API's CRDs: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 1<<20)
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := dec.Decode(&crd); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("decoding %s: %w", filepath.Base(f), err)
			}
			// The channel also ships a ValidatingAdmissionPolicy against mixing channels:
			// only the CRDs are needed here.
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			crds = append(crds, &crd)
		}
	}
	for _, plural := range gatewayAPIRoutes {
		if !slices.ContainsFunc(crds, func(c *apiextensionsv1.CustomResourceDefinition) bool {
			return c.Spec.Names.Plural == plural && strings.HasSuffix(c.Spec.Group, "gateway.networking.k8s.io")
		}) {
			return nil, fmt.Errorf("the Gateway API module has no %s CRD in config/crd/standard", plural)
		}
	}
	return crds, nil
}

// InstallGatewayAPICRDs applies the Gateway API's standard CRDs and waits until they are served.
func (c *Cluster) InstallGatewayAPICRDs(ctx context.Context) error {
	c.progress.printf("installing the Gateway API CRDs (standard channel)")
	crds, err := GatewayAPICRDs(ctx)
	if err != nil {
		return err
	}
	return config.InstallCRDs(ctx, c.Config, crds)
}
