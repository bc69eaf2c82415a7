package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// syncCache is a cache whose informers have synced or not; one that has not waits, as a
// cache does, until the context ends.
type syncCache struct {
	cache.Cache
	synced bool
}

func (c syncCache) WaitForCacheSync(ctx context.Context) bool {
	if !c.synced {
		<-ctx.Done()
	}
	return c.synced
}

// Herald is ready only once both of its caches have synced: the admission handlers read the
// metadata cache, the controllers the manager's.
func TestReadyOnlyOnceEveryCacheHasSynced(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	for _, tc := range []struct {
		manager, metadata bool
		ready             bool
	}{
		{true, true, true},
		{true, false, false},
		{false, true, false},
	} {
		start := time.Now()
		err := cachesSynced(syncCache{synced: tc.manager}, syncCache{synced: tc.metadata})(req)
		if took := time.Since(start); took > 10*syncProbeWait {
			t.Fatalf("the probe waited %s for caches that do not sync", took)
		}
		if (err == nil) != tc.ready {
			t.Errorf("manager's cache synced %v, metadata cache synced %v: %v, want ready %v", tc.manager, tc.metadata, err, tc.ready)
		}
	}
}
