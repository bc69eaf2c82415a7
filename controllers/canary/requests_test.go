package canary

import (
	"strings"
	"testing"
	"time"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	userreq "github.com/herald-rollouts/herald/internal/requests"
)

// ask writes a request on the Canary as the plugin does (the annotation only), made for the
// Canary's status as it stands.
func (w *world) ask(action flaggerv1.CanaryRequestAction) userreq.Request {
	w.t.Helper()
	c := w.canary()
	r := userreq.New(action, c, "alice", w.now)
	w.annotate(r.Encode())
	return r
}

func (w *world) annotate(value string) {
	w.t.Helper()
	c := w.canary()
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[userreq.Annotation] = value
	if err := w.cl.Update(w.ctx, c); err != nil {
		w.t.Fatal(err)
	}
}

// pass runs a pass without moving the clock (a request arrives through a watch event).
func (w *world) pass() string {
	w.t.Helper()
	if err := w.reconcile(); err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	return w.state()
}

func (w *world) lastRequest() flaggerv1.CanaryRequestStatus {
	w.t.Helper()
	r := w.canary().Status.LastRequest
	if r == nil {
		w.t.Fatal("no status.lastRequest")
	}
	return *r
}

// weightedAt initialises an istio Canary (stepWeight 10, maxWeight 50), releases imageV2 and
// runs the steps until the canary weight is 20.
func weightedAt20(t *testing.T) *world {
	w := newWorld(t, "istio", analysisWith(func(a *flaggerv1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 10, 50 }))
	w.initialise()
	w.release(imageV2)
	for _, want := range []string{"Progressing w0 i0 f0 | 100/0", "Progressing w10 i0 f0 | 90/10", "Progressing w20 i0 f0 | 80/20"} {
		if got := w.tick(); got != want {
			t.Fatalf("state %q, want %q", got, want)
		}
	}
	return w
}

func TestPromoteRequestEndsTheAnalysisAtItsWeight(t *testing.T) {
	w := weightedAt20(t)
	checks := w.prom.queries.Load()
	r := w.ask(flaggerv1.RequestPromote)
	// The request is acted on at once, not at the next step, and the canary keeps its 20%
	// while the primary rolls out.
	if got, want := w.pass(), "Promoting w20 i0 f0 | 80/20"; got != want {
		t.Fatalf("after the request: %q, want %q", got, want)
	}
	if got := w.lastRequest(); got.ID != r.ID || got.Outcome != flaggerv1.RequestHonoured || got.User != "alice" {
		t.Errorf("lastRequest = %+v, want %s honoured for alice", got, r.ID)
	}
	states := w.runToEnd()
	if got := states[len(states)-1]; got != "Succeeded w0 i0 f0 | 100/0" {
		t.Errorf("end: %q", got)
	}
	if w.primaryImage() != imageV2 {
		t.Errorf("primary runs %s, want %s", w.primaryImage(), imageV2)
	}
	if n := w.prom.queries.Load(); n != checks {
		t.Errorf("%d metric queries after the promote request, want none", n-checks)
	}
	for _, s := range w.vsWrites {
		if strings.Contains(s, "/30") || strings.Contains(s, "/40") || strings.Contains(s, "/50") {
			t.Errorf("the weight went past 20 after the promote request: %v", w.vsWrites)
			break
		}
	}
	w.wantEvent("Normal Promotion of podinfo.test requested by alice: analysis ended at canary weight 20, promoting", 1)

	// Honoured once: the annotation stays, and later passes (and the next release) do not
	// act on it again.
	w.release(imageV3)
	if got := w.tick(); !strings.HasPrefix(got, "Progressing w0") {
		t.Fatalf("next release: %q", got)
	}
	if got := w.tick(); !strings.HasPrefix(got, "Progressing w10") {
		t.Errorf("the old promote request acted on the next release: %q", got)
	}
}

func TestAbortRequestRollsBackAtOnce(t *testing.T) {
	w := weightedAt20(t)
	w.ask(flaggerv1.RequestAbort)
	if got, want := w.pass(), "Failed w0 i0 f0 | 100/0"; got != want {
		t.Fatalf("after abort: %q, want %q", got, want)
	}
	w.wantReplicas(testName, 0)
	if w.primaryImage() != imageV1 {
		t.Errorf("primary runs %s after abort", w.primaryImage())
	}
	if got := w.lastRequest(); got.Outcome != flaggerv1.RequestHonoured || got.Action != flaggerv1.RequestAbort {
		t.Errorf("lastRequest = %+v", got)
	}
	w.wantEvent("Warning Rolling back podinfo.test: aborted by alice", 1)
}

func TestRetryRequestRerunsTheFailedRevision(t *testing.T) {
	w := weightedAt20(t)
	w.ask(flaggerv1.RequestAbort)
	w.pass()
	failed := w.canary().Status.LastAppliedSpec
	// Without a request, a failed revision stays failed.
	if got := w.tick(); !strings.HasPrefix(got, "Failed") {
		t.Fatalf("a failed revision started again by itself: %q", got)
	}
	w.ask(flaggerv1.RequestRetry)
	if got, want := w.pass(), "Progressing w0 i0 f0 | 100/0"; got != want {
		t.Fatalf("after retry: %q, want %q", got, want)
	}
	if got := w.canary().Status.LastAppliedSpec; got != failed {
		t.Errorf("retry analyses revision %s, want the failed %s", got, failed)
	}
	d := w.deployment(testName)
	if d.Spec.Template.Spec.Containers[0].Image != imageV2 || *d.Spec.Replicas == 0 {
		t.Errorf("target after retry: image %s replicas %d, want %s scaled up", d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, imageV2)
	}
	states := w.runToEnd()
	if got := states[len(states)-1]; got != "Succeeded w0 i0 f0 | 100/0" {
		t.Errorf("retried run ended %q", got)
	}
	if w.primaryImage() != imageV2 {
		t.Errorf("primary runs %s", w.primaryImage())
	}
}

func TestPauseHoldsTheAnalysisUntilResumed(t *testing.T) {
	w := weightedAt20(t)
	checks := w.prom.queries.Load()
	w.ask(flaggerv1.RequestPause)
	w.pass()
	for range 3 {
		if got, want := w.tick(), "Progressing w20 i0 f0 | 80/20"; got != want {
			t.Fatalf("paused: %q, want %q", got, want)
		}
	}
	if n := w.prom.queries.Load(); n != checks {
		t.Errorf("%d metric queries while paused", n-checks)
	}
	if p := w.canary().Status.Paused; p == nil || p.Revision != w.canary().Status.LastAppliedSpec {
		t.Errorf("status.paused = %+v", p)
	}
	w.ask(flaggerv1.RequestResume)
	if got, want := w.pass(), "Progressing w30 i0 f0 | 70/30"; got != want {
		t.Errorf("after resume: %q, want %q (the step that was due runs)", got, want)
	}
	if w.canary().Status.Paused != nil {
		t.Error("status.paused kept after resume")
	}
	if w.prom.queries.Load() == checks {
		t.Error("no metric check after resume")
	}
}

func TestPauseDoesNotHoldANewRevision(t *testing.T) {
	w := weightedAt20(t)
	w.ask(flaggerv1.RequestPause)
	w.pass()
	w.release(imageV3)
	if got := w.pass(); got != "Progressing w0 i0 f0 | 100/0" {
		t.Fatalf("new revision while paused: %q", got)
	}
	if got := w.tick(); got != "Progressing w10 i0 f0 | 90/10" {
		t.Errorf("the pause of the previous revision held the new one: %q", got)
	}
	if w.canary().Status.Paused != nil {
		t.Error("status.paused kept for a revision no longer analysed")
	}
}

func TestStaleRequestIsIgnored(t *testing.T) {
	w := weightedAt20(t)
	c := w.canary()
	stale := userreq.New(flaggerv1.RequestPromote, c, "bob", w.now)
	stale.Revision = "0123456789abcdef"
	w.annotate(stale.Encode())
	if got := w.pass(); got != "Progressing w20 i0 f0 | 80/20" {
		t.Fatalf("a stale promote acted: %q", got)
	}
	if got := w.lastRequest(); got.Outcome != flaggerv1.RequestStale || got.ID != stale.ID {
		t.Errorf("lastRequest = %+v, want Stale", got)
	}
	w.wantEvent("Warning Request ignored: promote of podinfo.test requested by bob, Stale: …", 1)
	w.tick()
	w.wantEvent("Warning Request ignored: …", 1) // said once
}

func TestRequestForARevisionTheTargetLeftIsStale(t *testing.T) {
	w := weightedAt20(t)
	// The request is made for the revision under analysis, but the target changes before
	// Herald sees the request: promoting now would promote an unanalysed revision.
	r := userreq.New(flaggerv1.RequestPromote, w.canary(), "bob", w.now)
	w.release(imageV3)
	w.annotate(r.Encode())
	w.pass()
	if got := w.lastRequest(); got.Outcome != flaggerv1.RequestStale {
		t.Errorf("lastRequest = %+v, want Stale", got)
	}
	if w.primaryImage() != imageV1 {
		t.Errorf("primary runs %s: a revision nobody analysed was promoted", w.primaryImage())
	}
}

func TestRequestThatMakesNoSenseIsRefused(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(nil))
	w.initialise()
	w.ask(flaggerv1.RequestAbort)
	if got := w.pass(); !strings.HasPrefix(got, "Initialized") {
		t.Fatalf("abort of an idle Canary: %q", got)
	}
	got := w.lastRequest()
	if got.Outcome != flaggerv1.RequestRefused || !strings.Contains(got.Message, "no analysis in progress") {
		t.Errorf("lastRequest = %+v, want Refused", got)
	}
}

func TestMalformedRequestIsRefusedOnce(t *testing.T) {
	w := newWorld(t, "istio", analysisWith(nil))
	w.initialise()
	w.annotate(`{"id":"x1","action":"promote-now","revision":""}`)
	w.pass()
	got := w.lastRequest()
	if got.Outcome != flaggerv1.RequestRefused || !strings.Contains(got.Message, `"promote-now"`) {
		t.Errorf("lastRequest = %+v", got)
	}
	w.now = w.now.Add(time.Minute)
	w.pass()
	w.wantEvent("Warning Request ignored: …", 1)
}
