package requests

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func TestParseRoundTripAndStrictness(t *testing.T) {
	c := &flaggerv1.Canary{Status: flaggerv1.CanaryStatus{LastAppliedSpec: "abc"}}
	r := New(flaggerv1.RequestPause, c, "alice", time.Date(2026, 5, 1, 12, 0, 0, 500, time.UTC))
	got, err := Parse(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.Action != flaggerv1.RequestPause || got.Revision != "abc" || got.User != "alice" {
		t.Errorf("round trip: %+v", got)
	}
	if New(flaggerv1.RequestPause, c, "", time.Now()).ID == r.ID {
		t.Error("two requests share an id")
	}
	for raw, want := range map[string]string{
		`{"id":"a1","action":"promote","revision":"x","extra":1}`:                       `unknown field "extra"`,
		`{"id":"A B","action":"promote","revision":"x"}`:                                "lower-case letters",
		`{"id":"a1","action":"deploy","revision":"x"}`:                                  `action "deploy" is not one of promote, abort, retry, pause, resume`,
		`{"id":"a1","action":"promote"} {}`:                                             "data after the JSON object",
		`not json`:                                                                      "is not a request",
		`{"id":"a1","action":"promote","revision":"` + strings.Repeat("x", 3000) + `"}`: "bytes, more than",
	} {
		if _, err := Parse(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.60s): %v, want an error with %q", raw, err, want)
		}
	}
}

func TestPendingIsHandledOnce(t *testing.T) {
	c := &flaggerv1.Canary{Status: flaggerv1.CanaryStatus{Phase: flaggerv1.CanaryPhaseProgressing, LastAppliedSpec: "abc"}}
	r := New(flaggerv1.RequestPromote, c, "", time.Now())
	c.Annotations = map[string]string{Annotation: r.Encode()}
	if p, err := Pending(c); err != nil || p == nil || p.ID != r.ID {
		t.Fatalf("Pending = %v, %v", p, err)
	}
	c.Status.LastRequest = &flaggerv1.CanaryRequestStatus{ID: r.ID}
	if p, _ := Pending(c); p != nil {
		t.Errorf("a handled request is still pending: %+v", p)
	}
}

func TestCheck(t *testing.T) {
	at := func(phase flaggerv1.CanaryPhase) *flaggerv1.Canary {
		return &flaggerv1.Canary{Status: flaggerv1.CanaryStatus{Phase: phase, LastAppliedSpec: "new", LastPromotedSpec: "old"}}
	}
	ok := map[flaggerv1.CanaryRequestAction][]flaggerv1.CanaryPhase{
		flaggerv1.RequestPromote: {flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion},
		flaggerv1.RequestAbort:   {flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion},
		flaggerv1.RequestRetry:   {flaggerv1.CanaryPhaseFailed},
		flaggerv1.RequestPause:   {flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion},
	}
	phases := []flaggerv1.CanaryPhase{"", flaggerv1.CanaryPhaseInitializing, flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseWaiting,
		flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion, flaggerv1.CanaryPhasePromoting,
		flaggerv1.CanaryPhaseFinalising, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed}
	for action, allowed := range ok {
		for _, phase := range phases {
			err := Allowed(at(phase), action)
			want := false
			for _, a := range allowed {
				want = want || a == phase
			}
			if (err == nil) != want {
				t.Errorf("%s in phase %q: %v, want allowed=%v", action, phase, err, want)
			}
		}
	}
	// Resume only while paused, for the revision under analysis.
	c := at(flaggerv1.CanaryPhaseProgressing)
	if Allowed(c, flaggerv1.RequestResume) == nil {
		t.Error("resume allowed without a pause")
	}
	c.Status.Paused = &flaggerv1.CanaryPauseStatus{Revision: "new", Since: metav1.Now()}
	if err := Allowed(c, flaggerv1.RequestResume); err != nil {
		t.Errorf("resume of a paused analysis: %v", err)
	}
	c.Status.Paused.Revision = "older"
	if Allowed(c, flaggerv1.RequestResume) == nil {
		t.Error("a pause of another revision counts as paused")
	}
	// A request for another revision is stale, whatever its action.
	r := Request{ID: "x", Action: flaggerv1.RequestPromote, Revision: "older"}
	if err := Check(at(flaggerv1.CanaryPhaseProgressing), r); !errors.Is(err, ErrStale) {
		t.Errorf("stale request: %v", err)
	}
	// Nothing is done on a suspended Canary.
	s := at(flaggerv1.CanaryPhaseProgressing)
	s.Spec.Suspend = true
	if err := Allowed(s, flaggerv1.RequestAbort); err == nil || !strings.Contains(err.Error(), "suspended") {
		t.Errorf("suspended: %v", err)
	}
}
