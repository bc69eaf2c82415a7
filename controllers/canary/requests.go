package canary

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	userreq "github.com/herald-rollouts/herald/internal/requests"
)

// Requests made with `kubectl herald` (internal/requests): promote, abort, retry, pause and
// resume, carried by the herald.dev/request annotation. Each is acted on once (its id goes to
// status.lastRequest with the outcome), only for the revision it was made for, and only when it
// makes sense in the Canary's phase; otherwise it is recorded as Stale or Refused, with a
// Warning event that says why.

// requestChanged lets a new request through the Canary watch, whose other predicate passes
// only spec changes: an annotation does not change the generation.
func requestChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld == nil || e.ObjectNew == nil {
				return false
			}
			return e.ObjectOld.GetAnnotations()[userreq.Annotation] != e.ObjectNew.GetAnnotations()[userreq.Annotation]
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// handleRequests acts on a pending request and holds a paused analysis. It runs once per pass,
// after the target and the routes are read and before the phase's work; done means the pass
// ends here with res and err.
func (p *pass) handleRequests(ctx context.Context) (res ctrl.Result, done bool, err error) {
	c := p.c
	// A pause holds only the revision it was asked for, while it is analysed.
	if c.Status.Paused != nil && !userreq.IsPaused(c) {
		c.Status.Paused = nil
	}
	req, perr := userreq.Pending(c)
	switch {
	case perr != nil:
		p.refuseMalformed(perr)
	case req != nil:
		res, done, err = p.actOn(ctx, *req)
		if done || err != nil {
			return res, true, err
		}
	}
	if userreq.IsPaused(c) && p.rev == c.Status.LastAppliedSpec {
		// No step, hook or metric until resumed: the resume request's annotation, or a new
		// revision of the target, brings the Canary back through its watches.
		p.log.V(1).Info("Analysis paused", "revision", c.Status.LastAppliedSpec)
		return ctrl.Result{}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// actOn carries out request r, or records why not. The request is recorded as honoured only
// once its action has succeeded: after an error the next pass tries it again.
func (p *pass) actOn(ctx context.Context, r userreq.Request) (res ctrl.Result, done bool, err error) {
	c := p.c
	by := ""
	if r.User != "" {
		by = " by " + r.User
	}
	what := fmt.Sprintf("%s of %s.%s requested%s", r.Action, c.Name, c.Namespace, by)
	log := p.log.WithValues("request", r.ID, "action", r.Action, "revision", r.Revision)
	if cerr := userreq.Check(c, r); cerr != nil {
		outcome := flaggerv1.RequestRefused
		if errors.Is(cerr, userreq.ErrStale) {
			outcome = flaggerv1.RequestStale
		}
		log.Info("Request not acted on", "outcome", outcome, "reason", cerr.Error())
		p.event(corev1.EventTypeWarning, "Request ignored: %s, %s: %v", what, outcome, cerr)
		p.recordRequest(r, outcome, cerr.Error())
		return ctrl.Result{}, false, nil
	}
	if p.rev != c.Status.LastAppliedSpec {
		// The target changed after the request was made and Herald has not taken the new
		// revision in yet: acting now would promote (or hold, or retry) a revision nobody
		// asked for.
		msg := fmt.Sprintf("%s was asked for revision %s, but the target has a new revision %s since; nothing was done, and the new revision is analysed as usual",
			r.Action, userreq.Short(r.Revision), userreq.Short(p.rev))
		log.Info("Request not acted on", "outcome", flaggerv1.RequestStale, "reason", msg)
		p.event(corev1.EventTypeWarning, "Request ignored: %s, %s: %s", what, flaggerv1.RequestStale, msg)
		p.recordRequest(r, flaggerv1.RequestStale, msg)
		return ctrl.Result{}, false, nil
	}
	log.Info("Acting on request")
	switch r.Action {
	case flaggerv1.RequestPromote:
		// The analysis ends here, at the weight it has reached: the canary keeps its share
		// while the primary rolls out, then the traffic returns to the primary, as after a
		// complete analysis.
		msg := fmt.Sprintf("analysis ended at canary weight %d, promoting", c.Status.CanaryWeight)
		p.event(corev1.EventTypeNormal, "Promotion of %s.%s requested%s: %s", c.Name, c.Namespace, by, msg)
		c.Status.Paused = nil
		res, err = p.promote(ctx)
		if err == nil {
			p.recordRequest(r, flaggerv1.RequestHonoured, msg)
		}
		return res, true, err
	case flaggerv1.RequestAbort:
		c.Status.Paused = nil
		res, err = p.rollback(ctx, fmt.Sprintf("Rolling back %s.%s: aborted%s", c.Name, c.Namespace, by))
		if err == nil {
			p.recordRequest(r, flaggerv1.RequestHonoured, "rolled back")
		}
		return res, true, err
	case flaggerv1.RequestRetry:
		res, err = p.retry(ctx, by)
		if err == nil {
			p.recordRequest(r, flaggerv1.RequestHonoured, "analysis restarted")
		}
		return res, true, err
	case flaggerv1.RequestPause:
		c.Status.Paused = &flaggerv1.CanaryPauseStatus{Revision: c.Status.LastAppliedSpec, Since: p.nowTime()}
		p.setMessage(fmt.Sprintf("Analysis paused%s.", by))
		p.event(corev1.EventTypeNormal, "Analysis of %s.%s paused%s", c.Name, c.Namespace, by)
		p.recordRequest(r, flaggerv1.RequestHonoured, "analysis paused")
		return ctrl.Result{}, true, nil
	case flaggerv1.RequestResume:
		c.Status.Paused = nil
		p.setMessage(fmt.Sprintf("Analysis resumed%s.", by))
		p.event(corev1.EventTypeNormal, "Analysis of %s.%s resumed%s", c.Name, c.Namespace, by)
		p.recordRequest(r, flaggerv1.RequestHonoured, "analysis resumed")
		return ctrl.Result{}, false, nil // the analysis goes on in this pass
	}
	return ctrl.Result{}, false, nil
}

// retry starts the analysis of the Failed revision again, as for a new revision but without a
// change to the target's template: the target is scaled up and the run starts from zero.
func (p *pass) retry(ctx context.Context, by string) (ctrl.Result, error) {
	c := p.c
	if err := p.scaleUp(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.resetRun()
	c.Status.LastCheck = nil
	p.event(corev1.EventTypeNormal, "Retry of %s.%s requested%s: restarting the analysis of revision %s", c.Name, c.Namespace, by, userreq.Short(c.Status.LastAppliedSpec))
	p.setPhase(flaggerv1.CanaryPhaseProgressing, "Retrying the failed revision, progressing canary analysis.")
	return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
}

// refuseMalformed records an annotation that is not a request, once per distinct value.
func (p *pass) refuseMalformed(perr error) {
	raw := p.c.Annotations[userreq.Annotation]
	sum := sha256.Sum256([]byte(raw))
	id := "invalid-" + hex.EncodeToString(sum[:8])
	if last := p.c.Status.LastRequest; last != nil && last.ID == id {
		return
	}
	p.event(corev1.EventTypeWarning, "Request ignored: %v", perr)
	p.recordRequest(userreq.Request{ID: id}, flaggerv1.RequestRefused, perr.Error())
}

// recordRequest writes what came of request r to status.lastRequest.
func (p *pass) recordRequest(r userreq.Request, outcome flaggerv1.CanaryRequestOutcome, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	p.c.Status.LastRequest = &flaggerv1.CanaryRequestStatus{
		ID: r.ID, Action: r.Action, Revision: r.Revision, Outcome: outcome, Message: msg, User: r.User, Time: p.nowTime(),
	}
}
