// Package router moves traffic between a Canary's primary and canary. Three providers exist:
// kubernetes (blue/green through the apex Service, which always selects the primary, so the
// router has nothing to write), istio (a VirtualService and two DestinationRules) and
// gatewayapi (an HTTPRoute or GRPCRoute, for every implementation of the Gateway API).
package router

import (
	"context"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Router sets and reads the traffic split of one Canary.
type Router interface {
	// Reconcile creates or updates the routing objects from the Canary's service spec,
	// keeping the weights and mirroring currently in place; direct edits of anything else
	// are overwritten.
	Reconcile(ctx context.Context, c *flaggerv1.Canary) error
	// SetRoutes routes primaryWeight and canaryWeight percent (summing to 100) and turns
	// mirroring to the canary on or off. It may update the Canary's session-affinity status
	// fields, which the caller writes.
	SetRoutes(ctx context.Context, c *flaggerv1.Canary, primaryWeight, canaryWeight int, mirrored bool) error
	// GetRoutes reads the split in place.
	GetRoutes(ctx context.Context, c *flaggerv1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error)
}

// Kubernetes is the router of the kubernetes provider: the apex Service selects the primary
// and nothing shifts at the apex, so there is nothing to write. The reported split follows
// the run, as blue/green does: all on the primary until the first iteration, then the canary.
type Kubernetes struct{}

func (Kubernetes) Reconcile(context.Context, *flaggerv1.Canary) error { return nil }

func (Kubernetes) SetRoutes(context.Context, *flaggerv1.Canary, int, int, bool) error { return nil }

func (Kubernetes) GetRoutes(_ context.Context, c *flaggerv1.Canary) (int, int, bool, error) {
	if c.Status.Iterations > 0 {
		return 0, 100, false, nil
	}
	return 100, 0, false, nil
}
