package canary

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
)

// TestFlaggerEventsAndAlerts: a weighted run whose confirm-traffic-increase gate is closed for
// two steps says so as Flagger does: a Warning naming the hook, one "Canary traffic increase is
// waiting for approval." alert (with the Cluster field of -cluster-name first), the "check
// passed" events of the gates and pre-rollout hooks, "Routing all traffic to primary" at the
// promotion, and a Succeeded status without the run's counters.
func TestFlaggerEventsAndAlerts(t *testing.T) {
	var mu sync.Mutex
	var received []alerts.Message
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m alerts.Message
		_ = json.NewDecoder(req.Body).Decode(&m)
		mu.Lock()
		received = append(received, m)
		mu.Unlock()
	}))
	defer chat.Close()
	dispatcher := alerts.NewDispatcher(&alerts.Sender{Global: []alerts.Destination{{Type: "webhook", Name: "global", Address: chat.URL}}},
		logr.Discard(), alerts.Options{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = dispatcher.Start(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	w := newWorld(t, "istio", nil)
	w.r.Alerts = dispatcher
	w.r.Options.ClusterName = "prod-eu"
	c := w.canary()
	c.Spec.Analysis = analysisWith(func(a *flaggerv1.CanaryAnalysis) {
		a.StepWeight, a.MaxWeight = 50, 50
		a.Webhooks = []flaggerv1.CanaryWebhook{w.hooks.hook(flaggerv1.PreRolloutHook), w.hooks.hook(flaggerv1.ConfirmTrafficIncreaseHook)}
	})
	if err := w.cl.Update(w.ctx, c); err != nil {
		t.Fatal(err)
	}
	w.initialise()
	w.hooks.set(flaggerv1.ConfirmTrafficIncreaseHook, http.StatusForbidden)
	w.release(imageV2)
	w.tick() // Progressing
	w.tick() // first step: pre-rollout, then the gate holds the weight
	w.tick() // still held
	w.hooks.set(flaggerv1.ConfirmTrafficIncreaseHook, http.StatusOK)
	states := w.runToEnd()
	if last := states[len(states)-1]; last != "Succeeded w0 i0 f0 | 100/0" {
		t.Fatalf("states %q", states)
	}
	w.wantEvent("Warning Halt podinfo.test advancement waiting for traffic increase approval confirm-traffic-increase", 2)
	w.wantEvent("Normal Confirm-traffic-increase check confirm-traffic-increase passed", 1)
	// The first step runs again while the gate holds its weight, pre-rollout hooks included.
	w.wantEvent("Normal Pre-rollout check pre-rollout passed", 3)
	w.wantEvent("Normal Routing all traffic to primary", 1)

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(received)
		mu.Unlock()
		waiting := 0
		var promoted *alerts.Message
		for i, m := range got {
			if m.Text == "Canary traffic increase is waiting for approval." {
				waiting++
				if m.Severity != flaggerv1.SeverityWarn || len(m.Fields) == 0 || m.Fields[0] != (alerts.Field{Name: "Cluster", Value: "prod-eu"}) {
					t.Fatalf("traffic increase alert %+v: want warn with the Cluster field first", m)
				}
			}
			if m.Text == "Canary analysis completed successfully, promotion finished." {
				promoted = &got[i]
			}
		}
		if promoted != nil {
			if waiting != 1 {
				t.Fatalf("%d traffic increase alerts, want 1: %+v", waiting, got)
			}
			if promoted.Fields[0].Name != "Cluster" {
				t.Errorf("promotion alert fields %v: want Cluster first", promoted.Fields)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts received: %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
