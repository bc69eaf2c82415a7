package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
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
		err := cachesSynced(map[string]cache.Cache{"controllers'": syncCache{synced: tc.manager}, "webhooks' metadata": syncCache{synced: tc.metadata}})(req)
		if took := time.Since(start); took > 10*syncProbeWait {
			t.Fatalf("the probe waited %s for caches that do not sync", took)
		}
		if (err == nil) != tc.ready {
			t.Errorf("manager's cache synced %v, metadata cache synced %v: %v, want ready %v", tc.manager, tc.metadata, err, tc.ready)
		}
		if !tc.metadata && (err == nil || err.Error() != "the webhooks' metadata cache has not synced") {
			t.Errorf("the metadata cache not synced: %v, want it named", err)
		}
	}
}

// The webhooks' cache runs on every replica: the manager starts a runnable that needs no
// leader election before the election, on standbys too.
func TestTheWebhooksCacheRunsOnEveryReplica(t *testing.T) {
	var r manager.LeaderElectionRunnable = everyReplica{}
	if r.NeedLeaderElection() {
		t.Fatal("the webhooks' metadata cache would start on the leader alone")
	}
}
