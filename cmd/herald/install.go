package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/herald-rollouts/herald/config"
)

// installCRDs applies Herald's CRDs (embedded from config/crd/bases) and waits until the API
// server serves them, so that the manager's informers can start. Local runs use it; a cluster
// install ships the CRDs with the chart or kustomization instead.
func installCRDs(ctx context.Context, cfg *rest.Config, log logr.Logger) error {
	crds, err := config.CRDObjects()
	if err != nil {
		return fmt.Errorf("reading embedded CRDs: %w", err)
	}
	if err := config.InstallCRDs(ctx, cfg, crds); err != nil {
		return err
	}
	log.Info("Installed CRDs", "count", len(crds))
	return nil
}
