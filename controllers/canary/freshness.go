package canary

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// A pass must act on its Canary as the previous pass left it: acting on an older status would
// repeat a once-only step (an event, a hook call, a promotion). The cache may lag behind the
// previous pass's status patch, so reading it blindly is unsafe, while reading the API server on
// every pass costs a request per pass — the bulk of Herald's API load with many Canaries.
// seenVersions remembers the resourceVersion each Canary had when a pass last read or wrote it;
// a pass reads the cache and trusts it only when it holds exactly that version (the workqueue
// never runs two passes of one Canary at once, so nothing of ours can have come after it).
// Anything else — a cache still behind, a newer write by someone else, a Canary not seen since
// start-up or a fail-over — is read from the API server.
type seenVersions struct {
	mu sync.Mutex
	m  map[types.NamespacedName]string
}

func (s *seenVersions) get(key types.NamespacedName) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// remember records the version a pass saw or wrote.
func (s *seenVersions) remember(c *flaggerv1.Canary) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[types.NamespacedName]string{}
	}
	s.m[types.NamespacedName{Namespace: c.Namespace, Name: c.Name}] = c.ResourceVersion
}

// forget makes the next pass read from the API server (after a failed write, or a deletion).
func (s *seenVersions) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// read returns the Canary a pass acts on, nil when it is gone: from the cache when the cache
// holds the version the last pass left, else from the API server.
func (r *Reconciler) read(ctx context.Context, key types.NamespacedName) (*flaggerv1.Canary, error) {
	var c flaggerv1.Canary
	if want, ok := r.seen.get(key); ok {
		if err := r.Client.Get(ctx, key, &c); err == nil && c.ResourceVersion == want {
			r.Metrics.IncCanaryRead("cache")
			return &c, nil
		}
		c = flaggerv1.Canary{}
	}
	r.Metrics.IncCanaryRead("api")
	if err := r.APIReader.Get(ctx, key, &c); err != nil {
		if apierrors.IsNotFound(err) {
			r.seen.forget(key)
			return nil, nil
		}
		return nil, fmt.Errorf("reading canary: %w", err)
	}
	return &c, nil
}
