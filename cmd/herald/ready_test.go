package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// syncCache is a cache whose informers have synced or not.
type syncCache struct {
	cache.Cache
	synced bool
}

func (c syncCache) WaitForCacheSync(context.Context) bool { return c.synced }

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
		err := cachesSynced(syncCache{synced: tc.manager}, syncCache{synced: tc.metadata})(req)
		if (err == nil) != tc.ready {
			t.Errorf("manager's cache synced %v, metadata cache synced %v: %v, want ready %v", tc.manager, tc.metadata, err, tc.ready)
		}
	}
}
