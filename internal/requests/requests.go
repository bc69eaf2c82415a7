// Package requests is the runtime request a user makes on a Canary with `kubectl herald`
// (promote, abort, retry, pause, resume): its wire format in the herald.dev/request annotation
// and the rules that say when a request makes sense. The plugin checks a request with these
// rules before it writes anything, and the controller checks it again when it acts, so the two
// cannot disagree.
//
// A request is an annotation, never a change to the spec: the spec belongs to whoever applies
// the Canary (a GitOps tool), whose next apply would undo it. The annotation is written by the
// plugin's own field manager, which a GitOps re-apply leaves alone. Each request carries a
// unique id, so that Herald acts on it once (it records the id in status.lastRequest), and the
// revision it was made for, so that it never acts on a later one.
package requests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// Annotation is the key of a request on a Canary.
const Annotation = contract.AnnotationRequest

// FieldManager is the field manager the plugin writes requests as. It must not start with
// "kubectl": Flux's kustomize-controller takes over, on every apply, the fields of every
// manager whose name starts with "kubectl" (to undo `kubectl edit` and `kubectl apply`), and
// would then remove the request.
const FieldManager = "herald-cli"

// maxSize bounds the annotation Herald reads; a request is a few hundred bytes.
const maxSize = 2048

// Actions are the actions a request may ask for.
var Actions = []flaggerv1.CanaryRequestAction{
	flaggerv1.RequestPromote, flaggerv1.RequestAbort, flaggerv1.RequestRetry, flaggerv1.RequestPause, flaggerv1.RequestResume,
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Request is a request on a Canary, as the annotation carries it.
type Request struct {
	// ID is unique per request (a UUID).
	ID string `json:"id"`
	// Action is what is asked.
	Action flaggerv1.CanaryRequestAction `json:"action"`
	// Revision is the Canary's status.lastAppliedSpec when the request was made.
	Revision string `json:"revision"`
	// User made the request, as the API server told the plugin (informational).
	User string `json:"user,omitempty"`
	// Time the request was made.
	Time metav1.Time `json:"time"`
}

// New is a request for action on Canary c as its status stands now.
func New(action flaggerv1.CanaryRequestAction, c *flaggerv1.Canary, user string, now time.Time) Request {
	return Request{
		ID:       string(uuid.NewUUID()),
		Action:   action,
		Revision: c.Status.LastAppliedSpec,
		User:     truncate(user, 256),
		Time:     metav1.NewTime(now.UTC().Truncate(time.Second)),
	}
}

// Encode is the annotation value of r.
func (r Request) Encode() string {
	b, _ := json.Marshal(r) // a struct of strings and a time: it cannot fail
	return string(b)
}

// Pending returns the request carried by Canary c that Herald has not handled yet (its id is
// not status.lastRequest's), or nil. A malformed annotation is an error: the controller
// records it as refused, and the plugin says so.
func Pending(c *flaggerv1.Canary) (*Request, error) {
	raw, ok := c.Annotations[Annotation]
	if !ok {
		return nil, nil
	}
	r, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if last := c.Status.LastRequest; last != nil && last.ID == r.ID {
		return nil, nil
	}
	return r, nil
}

// Parse reads an annotation value strictly: unknown fields, a missing id or an unknown action
// are errors, so that a hand-written annotation with a typo is refused instead of ignored.
func Parse(raw string) (*Request, error) {
	if len(raw) > maxSize {
		return nil, fmt.Errorf("annotation %s is %d bytes, more than %d", Annotation, len(raw), maxSize)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("annotation %s is not a request: %w", Annotation, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s is not a request: data after the JSON object", Annotation)
	}
	if !idPattern.MatchString(r.ID) {
		return nil, fmt.Errorf("annotation %s: id %q must be 1 to 64 lower-case letters, digits and dashes", Annotation, truncate(r.ID, 80))
	}
	if !slices.Contains(Actions, r.Action) {
		return nil, fmt.Errorf("annotation %s: action %q is not one of %s", Annotation, truncate(string(r.Action), 40), actionList())
	}
	if len(r.Revision) > 128 {
		return nil, fmt.Errorf("annotation %s: revision is longer than 128 characters", Annotation)
	}
	r.User = truncate(r.User, 256)
	return &r, nil
}

func actionList() string {
	names := make([]string, len(Actions))
	for i, a := range Actions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// ErrStale says that a request was made for another revision than the current one.
var ErrStale = errors.New("stale request")

// Check says whether Herald can act on request r for Canary c as it stands: nil, an error
// wrapping ErrStale when r was made for another revision, or an error saying, in words a user
// can act on, why the request makes no sense now.
func Check(c *flaggerv1.Canary, r Request) error {
	s := c.Status
	if r.Revision != s.LastAppliedSpec {
		return fmt.Errorf("%w: %s was asked for revision %s, but the Canary is now at revision %s; nothing was done",
			ErrStale, r.Action, short(r.Revision), short(s.LastAppliedSpec))
	}
	return Allowed(c, r.Action)
}

// Allowed says whether action makes sense for Canary c now (nil), or why not.
func Allowed(c *flaggerv1.Canary, action flaggerv1.CanaryRequestAction) error {
	s := c.Status
	name := c.Namespace + "/" + c.Name
	if c.Spec.Suspend {
		return fmt.Errorf("canary %s is suspended (spec.suspend: true): Herald does not act on it until it is resumed", name)
	}
	if s.Phase == "" || s.Phase == flaggerv1.CanaryPhaseInitializing {
		return fmt.Errorf("canary %s is still initialising: there is no release to %s", name, action)
	}
	analysing := s.Phase == flaggerv1.CanaryPhaseProgressing || s.Phase == flaggerv1.CanaryPhaseWaitingPromotion
	promoting := s.Phase == flaggerv1.CanaryPhasePromoting || s.Phase == flaggerv1.CanaryPhaseFinalising
	switch action {
	case flaggerv1.RequestPromote:
		switch {
		case promoting:
			return fmt.Errorf("canary %s is already being promoted (phase %s)", name, s.Phase)
		case !analysing:
			return fmt.Errorf("canary %s has no analysis in progress to promote (phase %s)%s", name, s.Phase, hintFor(s.Phase))
		}
	case flaggerv1.RequestAbort:
		switch {
		case promoting:
			return fmt.Errorf("canary %s is being promoted (phase %s): a promotion under way cannot be aborted; release the previous version to roll back", name, s.Phase)
		case s.Phase == flaggerv1.CanaryPhaseFailed:
			return fmt.Errorf("canary %s has already failed and been rolled back", name)
		case !analysing:
			return fmt.Errorf("canary %s has no analysis in progress to abort (phase %s)%s", name, s.Phase, hintFor(s.Phase))
		}
	case flaggerv1.RequestRetry:
		if s.Phase != flaggerv1.CanaryPhaseFailed {
			return fmt.Errorf("canary %s has no failed revision to retry (phase %s): only a Failed release can be retried", name, s.Phase)
		}
		if s.LastAppliedSpec == "" || s.LastAppliedSpec == s.LastPromotedSpec {
			return fmt.Errorf("canary %s: the failed revision is the promoted one; there is nothing to retry", name)
		}
	case flaggerv1.RequestPause:
		switch {
		case !analysing:
			return fmt.Errorf("canary %s has no analysis in progress to pause (phase %s)", name, s.Phase)
		case IsPaused(c):
			return fmt.Errorf("canary %s is already paused (since %s)", name, s.Paused.Since.UTC().Format(time.RFC3339))
		}
	case flaggerv1.RequestResume:
		if !IsPaused(c) {
			return fmt.Errorf("canary %s is not paused", name)
		}
	default:
		return fmt.Errorf("unknown action %q: use one of %s", action, actionList())
	}
	return nil
}

// hintFor says what a user may have meant, by phase.
func hintFor(phase flaggerv1.CanaryPhase) string {
	switch phase {
	case flaggerv1.CanaryPhaseWaiting:
		return ": the new revision waits for its confirm-rollout gates"
	case flaggerv1.CanaryPhaseFailed:
		return ": the last revision failed; `kubectl herald retry` runs its analysis again"
	case flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseInitialized:
		return ": the last release is done"
	}
	return ""
}

// IsPaused reports whether a pause holds the analysis of Canary c: one asked for the revision
// under analysis, while an analysis is in progress.
func IsPaused(c *flaggerv1.Canary) bool {
	s := c.Status
	return s.Paused != nil && s.Paused.Revision == s.LastAppliedSpec &&
		(s.Phase == flaggerv1.CanaryPhaseProgressing || s.Phase == flaggerv1.CanaryPhaseWaitingPromotion)
}

// short is a revision as messages show it.
func short(rev string) string {
	if rev == "" {
		return "(none)"
	}
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// Short is a revision as tables show it: its first 12 characters.
func Short(rev string) string { return short(rev) }
