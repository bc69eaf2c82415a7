package canary

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/internal/contract"
)

func (p *pass) nowTime() metav1.Time { return metav1.NewTime(p.now) }

// setPhase moves the Canary to phase and keeps the Promoted condition as Flagger does: True
// when Initialized or Succeeded, False when Failed, Unknown otherwise; its reason is the phase.
// What the change announces (events, alerts, counters, post-rollout hooks) is derived from it
// once the status is written (announce).
func (p *pass) setPhase(phase flaggerv1.CanaryPhase, message string) {
	s := &p.c.Status
	if s.Phase != phase {
		s.LastTransitionTime = p.nowTime()
	}
	s.Phase = phase
	switch phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed:
		// As in Flagger, a run that ended keeps no counters: the next one starts from zero.
		// The failed checks of a rollback are kept for its alert.
		if phase == flaggerv1.CanaryPhaseFailed && s.FailedChecks > 0 {
			p.failedChecks = s.FailedChecks
		}
		s.CanaryWeight, s.Iterations, s.FailedChecks = 0, 0, 0
	}
	status := corev1.ConditionUnknown
	switch phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded:
		status = corev1.ConditionTrue
	case flaggerv1.CanaryPhaseFailed:
		status = corev1.ConditionFalse
	}
	p.setCondition(flaggerv1.PromotedType, status, string(phase), message)
}

// setMessage updates the Promoted condition's message without a phase change.
func (p *pass) setMessage(message string) {
	if cond := p.condition(flaggerv1.PromotedType); cond != nil {
		cond.Message, cond.LastUpdateTime = message, p.nowTime()
	}
}

func (p *pass) condition(t flaggerv1.CanaryConditionType) *flaggerv1.CanaryCondition {
	return flaggerv1.FindCondition(p.c.Status.Conditions, t)
}

// setCondition sets a condition, moving its transition time only when its status changes.
func (p *pass) setCondition(t flaggerv1.CanaryConditionType, status corev1.ConditionStatus, reason, message string) {
	now := p.nowTime()
	if cond := p.condition(t); cond != nil {
		if cond.Status != status {
			cond.LastTransitionTime = now
		}
		if cond.Status != status || cond.Reason != reason || cond.Message != message {
			cond.LastUpdateTime = now
		}
		cond.Status, cond.Reason, cond.Message = status, reason, message
		return
	}
	p.c.Status.Conditions = append(p.c.Status.Conditions, flaggerv1.CanaryCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastUpdateTime: now, LastTransitionTime: now,
	})
}

// removeCondition drops a condition: kstatus reads Reconciling and Stalled as "abnormal-true"
// conditions, present only while they hold.
func (p *pass) removeCondition(t flaggerv1.CanaryConditionType) {
	conds := p.c.Status.Conditions[:0]
	for _, cond := range p.c.Status.Conditions {
		if cond.Type != t {
			conds = append(conds, cond)
		}
	}
	p.c.Status.Conditions = conds
}

// setConditions writes, beside Flagger's Promoted condition, the conditions kstatus reads
// (sigs.k8s.io/cli-utils/pkg/kstatus), so that Flux health checks and `kubectl wait` follow a
// release, and status.observedGeneration:
//
//   - Stalled=True while the Canary cannot proceed until somebody changes it or an object it
//     names (a configuration problem: reason and message say which), and after a release
//     failed (reason the phase): kstatus Failed;
//   - Reconciling=True while a release runs (Initializing, Waiting, Progressing,
//     WaitingPromotion, Promoting, Finalising): kstatus InProgress;
//   - Ready=True once initialised or promoted (kstatus Current), False otherwise.
//
// passErr is the pass's error: nil or a terminalError.
func (p *pass) setConditions(passErr error) {
	s := &p.c.Status
	s.ObservedGeneration = p.c.Generation
	message := ""
	if cond := p.condition(flaggerv1.PromotedType); cond != nil {
		message = cond.Message
	}
	var stall *terminalError
	if !errors.As(passErr, &stall) && s.Phase == flaggerv1.CanaryPhaseFailed {
		stall = &terminalError{reason: string(s.Phase), msg: message}
	}
	reconciling := false
	switch s.Phase {
	case "", flaggerv1.CanaryPhaseInitializing, flaggerv1.CanaryPhaseWaiting, flaggerv1.CanaryPhaseProgressing,
		flaggerv1.CanaryPhaseWaitingPromotion, flaggerv1.CanaryPhasePromoting, flaggerv1.CanaryPhaseFinalising:
		reconciling = true
	}
	phase := string(s.Phase)
	if phase == "" {
		phase = string(flaggerv1.CanaryPhaseInitializing)
	}
	switch {
	case stall != nil:
		p.setCondition(flaggerv1.StalledType, corev1.ConditionTrue, stall.reason, stall.msg)
		p.removeCondition(flaggerv1.ReconcilingType)
		p.setCondition(flaggerv1.ReadyType, corev1.ConditionFalse, stall.reason, stall.msg)
	case reconciling:
		p.removeCondition(flaggerv1.StalledType)
		p.setCondition(flaggerv1.ReconcilingType, corev1.ConditionTrue, phase, message)
		p.setCondition(flaggerv1.ReadyType, corev1.ConditionFalse, phase, message)
	default:
		p.removeCondition(flaggerv1.StalledType)
		p.removeCondition(flaggerv1.ReconcilingType)
		p.setCondition(flaggerv1.ReadyType, corev1.ConditionTrue, phase, message)
	}
}

// note is an event of a step that the status does not tell.
type note struct{ eventType, message string }

// event notes an event with Flagger's reason ("Synced") and message; it is logged at once and
// published (Kubernetes event, event hooks) once the pass's status is written: a pass whose
// status write fails runs again, and must not announce its step twice.
func (p *pass) event(eventType, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if eventType == corev1.EventTypeWarning {
		p.log.Info(msg, "eventType", eventType)
	} else {
		p.log.Info(msg)
	}
	p.notes = append(p.notes, note{eventType, msg})
}

// announce publishes what the pass did, once its status is written: its notes, and what the
// change from old to the new status means, derived here and nowhere else so that each change
// is announced exactly once whatever code path made it — the events of a phase change, its
// alert, the success and failure counters and the post-rollout hooks, and a new Stalled reason.
func (p *pass) announce(ctx context.Context, old *flaggerv1.CanaryStatus) {
	c := p.c
	s := &c.Status
	target := fmt.Sprintf("%s.%s", c.Spec.TargetRef.Name, c.Namespace)
	events := p.notes
	add := func(eventType, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		p.log.Info(msg, "eventType", eventType)
		events = append(events, note{eventType, msg})
	}
	// A configuration problem is announced when it appears or changes (a failed release has
	// its own events).
	if stall := p.condition(flaggerv1.StalledType); stall != nil && stall.Reason != string(s.Phase) {
		if prev := flaggerv1.FindCondition(old.Conditions, flaggerv1.StalledType); prev == nil || prev.Message != stall.Message {
			add(corev1.EventTypeWarning, "%s", stall.Message)
		}
	}
	var after []func()
	if old.Phase != s.Phase {
		switch s.Phase {
		case flaggerv1.CanaryPhaseInitialized:
			add(corev1.EventTypeNormal, "Initialization done! %s.%s", c.Name, c.Namespace)
		case flaggerv1.CanaryPhaseProgressing:
			if steady(old.Phase) {
				add(corev1.EventTypeNormal, "New revision detected! Scaling up %s", target)
			}
		case flaggerv1.CanaryPhasePromoting:
			if steady(old.Phase) { // skipAnalysis: straight to the promotion
				add(corev1.EventTypeNormal, "New revision detected! Scaling up %s", target)
			}
			add(corev1.EventTypeNormal, "Copying %s template spec to %s.%s", target, contract.PrimaryName(c.Spec.TargetRef.Name), c.Namespace)
		case flaggerv1.CanaryPhaseSucceeded:
			if old.Phase == flaggerv1.CanaryPhaseFinalising || old.Phase == flaggerv1.CanaryPhasePromoting {
				add(corev1.EventTypeNormal, "Promotion completed! Scaling down %s", target)
				status := metrics.AnalysisCompleted
				if c.SkipAnalysis() {
					status = metrics.AnalysisSkipped
				}
				after = append(after, func() {
					p.r.Metrics.IncSuccess(c.Spec.TargetRef.Name, c.Namespace, c.DeploymentStrategy(), status)
				}, func() { p.postRollout(ctx) })
			}
		case flaggerv1.CanaryPhaseFailed:
			if s.CanaryWeight == 100 {
				add(corev1.EventTypeWarning, "Canary promotion failed! All traffic routed to %s", target)
			} else {
				add(corev1.EventTypeWarning, "Canary failed! Scaling down %s", target)
			}
			after = append(after, func() {
				p.r.Metrics.IncFailure(c.Spec.TargetRef.Name, c.Namespace, c.DeploymentStrategy(), metrics.AnalysisCompleted)
			}, func() { p.postRollout(ctx) })
		}
		p.alertPhaseChange(old.Phase)
	}
	for _, m := range p.alerts {
		p.sendAlert(m)
	}
	for _, e := range events {
		p.publish(e.eventType, e.message)
	}
	for _, f := range after {
		f()
	}
}

// steady reports whether a phase is one a new revision is detected from.
func steady(phase flaggerv1.CanaryPhase) bool {
	switch phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed, flaggerv1.CanaryPhaseWaiting:
		return true
	}
	return false
}

// publish records the Kubernetes event and posts it to the Canary's event hooks.
func (p *pass) publish(eventType, msg string) {
	p.r.Events.Event(p.c, eventType, "Synced", msg)
	var eventHooks []flaggerv1.CanaryWebhook
	if analysis := p.c.GetAnalysis(); analysis != nil {
		eventHooks = hooks.Of(analysis.Webhooks, flaggerv1.EventHook)
	}
	if len(eventHooks) == 0 && p.r.Options.EventWebhook != "" {
		// As in Flagger, the global -event-webhook gets the events of Canaries that have
		// no event hooks of their own.
		eventHooks = []flaggerv1.CanaryWebhook{{Name: "events", Type: flaggerv1.EventHook, URL: p.r.Options.EventWebhook}}
	}
	// Event hooks are notifications: they are posted in the background, so a slow or dead
	// endpoint never delays the analysis.
	for _, h := range eventHooks {
		pl := p.hookPayload(h, p.c.Status.LastAppliedSpec)
		if p.r.EventHooks != nil {
			// A bounded pool and queue: what does not fit is dropped and counted.
			p.r.EventHooks.Post(h, pl, eventType, msg, p.now)
			continue
		}
		log, caller, now := p.log, p.r.Hooks, p.now
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*h.GetTimeout())
			defer cancel()
			if err := caller.Event(ctx, h, pl, eventType, msg, now); err != nil {
				log.Info("Event hook failed", "hook", h.Name, "error", err.Error())
			}
		}()
	}
}

// observeDetection records how long after the target's last write Herald acted on it.
func (p *pass) observeDetection() {
	var latest time.Time
	for _, f := range p.target.Object().GetManagedFields() {
		if f.Time != nil && f.Time.After(latest) {
			latest = f.Time.Time
		}
	}
	if !latest.IsZero() {
		p.r.Metrics.ObserveDetection(p.c.Namespace, p.now.Sub(latest))
	}
}
