package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/requests"
)

func (h *harness) canary(name, ns string) *flaggerv1.Canary {
	h.t.Helper()
	var c flaggerv1.Canary
	if err := h.cl.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &c); err != nil {
		h.t.Fatal(err)
	}
	return &c
}

// A request that makes no sense is refused before anything is written.
func TestRequestsRefusedWriteNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "prod", "promote", "frontend"}, "canary prod/frontend has no analysis in progress to promote (phase Succeeded): the last release is done; nothing was changed"},
		{[]string{"-n", "prod", "abort", "frontend"}, "canary prod/frontend has no analysis in progress to abort (phase Succeeded)"},
		{[]string{"-n", "prod", "retry", "frontend"}, "has no failed revision to retry (phase Succeeded)"},
		{[]string{"abort", "backend"}, "canary test/backend has already failed and been rolled back"},
		{[]string{"pause", "backend"}, "has no analysis in progress to pause (phase Failed)"},
		{[]string{"pause", "podinfo"}, "canary test/podinfo is already paused (since 2026-05-01T11:58:00Z)"},
		{[]string{"resume", "backend"}, "canary test/backend is not paused"},
		{[]string{"promote", "nope"}, `canary "nope" not found in namespace "test"`},
		{[]string{"promote"}, "give the name of one Canary"},
	} {
		h := cluster(t)
		if code := h.run(tc.args...); code != 1 {
			t.Errorf("%v: exit %d, want 1", tc.args, code)
		}
		contains(t, h.err.String(), tc.want)
		for _, c := range []*flaggerv1.Canary{h.canary("frontend", "prod"), h.canary("backend", "test"), h.canary("podinfo", "test")} {
			if _, ok := c.Annotations[requests.Annotation]; ok {
				t.Errorf("%v wrote a request on %s", tc.args, c.Name)
			}
		}
	}
}

func TestRequestIsWrittenAsItsOwnFieldManager(t *testing.T) {
	h := cluster(t)
	if code := h.run("retry", "backend", "--wait=false"); code != 0 {
		t.Fatalf("exit %d: %s", code, h.err.String())
	}
	c := h.canary("backend", "test")
	r, err := requests.Pending(c)
	if err != nil || r == nil {
		t.Fatalf("no pending request (%v): %v", err, c.Annotations)
	}
	if r.Action != flaggerv1.RequestRetry || r.Revision != revA || r.ID == "" || !r.Time.Time.Equal(testClock) {
		t.Errorf("request %+v", r)
	}
	contains(t, h.out.String(), "canary.flagger.app/backend retry requested (request "+r.ID+")")
	owned := false
	for _, m := range c.ManagedFields {
		if m.Manager == requests.FieldManager && strings.Contains(m.FieldsV1.GetRawString(), requests.Annotation) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("the annotation is not owned by %s: %+v", requests.FieldManager, c.ManagedFields)
	}
	if c.Spec.Analysis.Iterations != 5 || c.Spec.Provider != "kubernetes" {
		t.Errorf("the spec changed: %+v", c.Spec)
	}

	// A second request while the first is pending would replace it unseen: refused.
	if code := h.run("abort", "backend"); code != 1 {
		t.Errorf("second request: exit %d, want 1", code)
	}
	contains(t, h.err.String(), "has a retry request made 2026-05-01T12:00:00Z that Herald has not acted on yet")
	if got, _ := requests.Pending(h.canary("backend", "test")); got == nil || got.ID != r.ID {
		t.Errorf("the pending request was replaced: %+v", got)
	}
}

// With --wait the plugin reports what Herald did: a refusal is exit 1 with Herald's reason.
func TestRequestWaitsForHerald(t *testing.T) {
	for _, tc := range []struct {
		outcome flaggerv1.CanaryRequestOutcome
		message string
		code    int
		out     string
	}{
		{flaggerv1.RequestHonoured, "analysis ended at canary weight 20, promoting", 0, "canary.flagger.app/podinfo promote Honoured: analysis ended at canary weight 20, promoting"},
		{flaggerv1.RequestStale, "promote was asked for revision 4f3a2c1b9e0d, but the target has a new revision", 1, ""},
	} {
		h := cluster(t)
		go func() {
			// Herald: acts on the request when it appears.
			for range 100 {
				time.Sleep(50 * time.Millisecond)
				c := h.canary("podinfo", "test")
				r, _ := requests.Pending(c)
				if r == nil {
					continue
				}
				c.Status.LastRequest = &flaggerv1.CanaryRequestStatus{ID: r.ID, Action: r.Action, Revision: r.Revision, Outcome: tc.outcome, Message: tc.message}
				_ = h.cl.Status().Update(context.Background(), c)
				return
			}
		}()
		if code := h.run("promote", "podinfo"); code != tc.code {
			t.Errorf("%s: exit %d, want %d: %s", tc.outcome, code, tc.code, h.err.String())
		}
		if tc.code == 0 {
			contains(t, h.out.String(), tc.out)
		} else {
			contains(t, h.err.String(), "Herald did not act on the promote request (Stale): "+tc.message)
		}
	}
}

func TestRequestWaitTimesOut(t *testing.T) {
	h := cluster(t)
	if code := h.run("promote", "podinfo", "--timeout", "300ms"); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	contains(t, h.err.String(), "Herald has not acted on the promote request within 300ms (is Herald running?)")
}
