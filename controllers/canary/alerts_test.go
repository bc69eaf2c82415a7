package canary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/alerts"
)

func TestPhaseAlert(t *testing.T) {
	gate := func(typ flaggerv1.HookType, mute bool) flaggerv1.CanaryWebhook {
		return flaggerv1.CanaryWebhook{Name: string(typ), Type: typ, URL: "http://gate", MuteAlert: mute}
	}
	canary := func(phase flaggerv1.CanaryPhase, hooks ...flaggerv1.CanaryWebhook) *flaggerv1.Canary {
		return &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
			Spec: flaggerv1.CanarySpec{
				TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"},
				Analysis:  &flaggerv1.CanaryAnalysis{Iterations: 2, Threshold: 3, Webhooks: hooks},
			},
			Status: flaggerv1.CanaryStatus{Phase: phase, FailedChecks: 3},
		}
	}
	skipped := canary(flaggerv1.CanaryPhaseFinalising)
	skipped.Spec.SkipAnalysis = true
	const failed = "Canary analysis failed, Deployment scaled to zero: Rolling back podinfo.test failed checks threshold reached 3"

	cases := []struct {
		name     string
		c        *flaggerv1.Canary
		next     flaggerv1.CanaryPhase
		message  string
		text     string // "" = no alert
		severity flaggerv1.AlertSeverity
	}{
		{"initialized", canary(flaggerv1.CanaryPhaseInitializing), flaggerv1.CanaryPhaseInitialized, "", "New Deployment detected, initialization completed.", "info"},
		{"run starts", canary(flaggerv1.CanaryPhaseSucceeded), flaggerv1.CanaryPhaseProgressing, "", "New revision detected, progressing canary analysis.", "info"},
		{"run starts after approval", canary(flaggerv1.CanaryPhaseWaiting), flaggerv1.CanaryPhaseProgressing, "", "New revision detected, progressing canary analysis.", "info"},
		{"blue/green switch within a run", canary(flaggerv1.CanaryPhaseWaitingPromotion), flaggerv1.CanaryPhaseProgressing, "", "", ""},
		{"waiting", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, false)), flaggerv1.CanaryPhaseWaiting, "", "Canary is waiting for approval.", "warn"},
		{"waiting, muted", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, true)), flaggerv1.CanaryPhaseWaiting, "", "", ""},
		{"waiting, one of two muted", canary(flaggerv1.CanaryPhaseSucceeded, gate(flaggerv1.ConfirmRolloutHook, true), gate(flaggerv1.ConfirmRolloutHook, false)),
			flaggerv1.CanaryPhaseWaiting, "", "Canary is waiting for approval.", "warn"},
		{"waiting promotion, other type muted", canary(flaggerv1.CanaryPhaseProgressing, gate(flaggerv1.ConfirmRolloutHook, true), gate(flaggerv1.ConfirmPromotionHook, false)),
			flaggerv1.CanaryPhaseWaitingPromotion, "", "Canary promotion is waiting for approval.", "warn"},
		{"waiting promotion, muted", canary(flaggerv1.CanaryPhaseProgressing, gate(flaggerv1.ConfirmPromotionHook, true)), flaggerv1.CanaryPhaseWaitingPromotion, "", "", ""},
		{"promoted", canary(flaggerv1.CanaryPhaseFinalising), flaggerv1.CanaryPhaseSucceeded, "", "Canary analysis completed successfully, promotion finished.", "info"},
		// The pass that sees the primary rolled out goes through Finalising to Succeeded.
		{"promoted in one pass", canary(flaggerv1.CanaryPhasePromoting), flaggerv1.CanaryPhaseSucceeded, "", "Canary analysis completed successfully, promotion finished.", "info"},
		{"promoted without analysis", skipped, flaggerv1.CanaryPhaseSucceeded, "", "Canary analysis was skipped, promotion finished.", "info"},
		{"back to the promoted revision", canary(flaggerv1.CanaryPhaseWaiting), flaggerv1.CanaryPhaseSucceeded, "Back to the promoted revision.", "", ""},
		{"rolled back", canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhaseFailed, failed, failed, "error"},
		{"promoting", canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhasePromoting, "", "", ""},
		{"no change", canary(flaggerv1.CanaryPhaseFailed), flaggerv1.CanaryPhaseFailed, failed, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := phaseAlert(tc.c, tc.c.Status.Phase, tc.next, tc.message, 3)
			if tc.text == "" {
				if ok {
					t.Fatalf("unexpected alert %+v", m)
				}
				return
			}
			if !ok {
				t.Fatal("no alert")
			}
			if m.Text != tc.text || m.Severity != tc.severity || m.Phase != tc.next || m.Canary != "podinfo" || m.Namespace != "test" {
				t.Errorf("got %+v", m)
			}
			if len(m.Fields) == 0 || m.Fields[0].Value != "Deployment/podinfo.test" {
				t.Errorf("the first field names the target: %v", m.Fields)
			}
		})
	}
	if m, _ := phaseAlert(canary(flaggerv1.CanaryPhaseProgressing), flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseFailed, failed, 3); m.Fields[1].Value != "3 of 3" {
		t.Errorf("a rollback says how many checks failed: %v", m.Fields)
	}
}

// Flagger's rule: the alert of a closed gate is muted by the muteAlert of the hook that halted.
func TestGateAlertFollowsTheHaltingHook(t *testing.T) {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"},
			Analysis: &flaggerv1.CanaryAnalysis{Webhooks: []flaggerv1.CanaryWebhook{
				{Name: "quiet", Type: flaggerv1.ConfirmRolloutHook, URL: "http://gate/quiet", MuteAlert: true},
				{Name: "loud", Type: flaggerv1.ConfirmRolloutHook, URL: "http://gate/loud"},
				{Name: "quiet-promotion", Type: flaggerv1.ConfirmPromotionHook, URL: "http://gate/p", MuteAlert: true},
			}},
		},
		Status: flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseSucceeded},
	}
	for _, tc := range []struct {
		next    flaggerv1.CanaryPhase
		halting string
		alert   bool
	}{
		{flaggerv1.CanaryPhaseWaiting, "quiet", false},
		{flaggerv1.CanaryPhaseWaiting, "loud", true},
		{flaggerv1.CanaryPhaseWaiting, "", true}, // unknown hook: not every gate is muted
		{flaggerv1.CanaryPhaseWaitingPromotion, "quiet-promotion", false},
		{flaggerv1.CanaryPhaseWaitingPromotion, "", false},     // its only gate is muted
		{flaggerv1.CanaryPhaseWaitingPromotion, "quiet", true}, // a rollout gate's name does not mute a promotion gate
		{flaggerv1.CanaryPhaseProgressing, "loud", false},
	} {
		m, ok := gateAlert(c, c.Status.Phase, tc.next, tc.halting)
		if ok != tc.alert {
			t.Errorf("%s halted by %q: alert %t, want %t", tc.next, tc.halting, ok, tc.alert)
			continue
		}
		if ok && (m.Severity != flaggerv1.SeverityWarn || m.Phase != tc.next || !strings.Contains(m.Text, "waiting for approval")) {
			t.Errorf("%s halted by %q: %+v", tc.next, tc.halting, m)
		}
	}
}

// awaitApproval leaves the status setPhase leaves, and the phase change sends the waiting
// alert once, unless the hook that halted mutes it.
func TestAwaitApproval(t *testing.T) {
	var mu sync.Mutex
	var received []string
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(req.Body).Decode(&body)
		mu.Lock()
		received = append(received, fmt.Sprint(body["message"]))
		mu.Unlock()
	}))
	defer chat.Close()
	// The global provider receives the alerts of Canaries without analysis.alerts.
	dispatcher := alerts.NewDispatcher(&alerts.Sender{Global: []alerts.Destination{{Type: "webhook", Name: "global", Address: chat.URL}}},
		logr.Discard(), alerts.Options{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = dispatcher.Start(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	base := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo"},
		Spec: flaggerv1.CanarySpec{
			TargetRef: flaggerv1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"},
			Analysis: &flaggerv1.CanaryAnalysis{Webhooks: []flaggerv1.CanaryWebhook{
				{Name: "quiet", Type: flaggerv1.ConfirmRolloutHook, URL: "http://gate/quiet", MuteAlert: true},
				{Name: "loud", Type: flaggerv1.ConfirmRolloutHook, URL: "http://gate/loud"},
			}},
		},
		Status: flaggerv1.CanaryStatus{
			Phase:      flaggerv1.CanaryPhaseSucceeded,
			Conditions: []flaggerv1.CanaryCondition{{Type: flaggerv1.PromotedType, Status: "True", Reason: "Succeeded"}},
		},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		from    flaggerv1.CanaryPhase
		halting string
		want    []string
	}{
		{flaggerv1.CanaryPhaseSucceeded, "quiet", nil},
		{flaggerv1.CanaryPhaseSucceeded, "loud", []string{"Canary is waiting for approval."}},
		{flaggerv1.CanaryPhaseWaiting, "loud", nil}, // already waiting: announced once
	} {
		c := base.DeepCopy()
		c.Status.Phase = tc.from
		p := &pass{r: &Reconciler{Alerts: dispatcher}, c: c, now: now}
		p.awaitApproval(flaggerv1.CanaryPhaseWaiting, "Waiting for approval.", tc.halting)
		ref := &pass{r: &Reconciler{}, c: base.DeepCopy(), now: now}
		ref.c.Status.Phase = tc.from
		ref.setPhase(flaggerv1.CanaryPhaseWaiting, "Waiting for approval.")
		if !equality.Semantic.DeepEqual(p.c.Status, ref.c.Status) {
			t.Errorf("halted by %q from %s: status\n%+v\nwant setPhase's\n%+v", tc.halting, tc.from, p.c.Status, ref.c.Status)
		}

		p.alertPhaseChange(tc.from)
		// One Canary's alerts arrive in order: once this one is in, any alert before it is.
		sentinel := fmt.Sprint("sentinel ", i)
		dispatcher.Enqueue(c, alerts.Message{Canary: c.Name, Namespace: c.Namespace, Text: sentinel})
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := slices.Clone(received)
			mu.Unlock()
			if n := len(got); n > 0 && got[n-1] == sentinel {
				if !slices.Equal(got[:n-1], tc.want) {
					t.Errorf("halted by %q from %s: alerts %q, want %q", tc.halting, tc.from, got[:n-1], tc.want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sentinel alert did not arrive: %q", got)
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		received = nil
		mu.Unlock()
	}
}
