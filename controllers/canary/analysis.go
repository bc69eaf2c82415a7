package canary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/internal/hookwire"
)

// check is one link of the chain an analysis step goes through. A check that decides the
// pass (wait, roll back, count a failure) returns done with the pass's result; otherwise the
// next check runs.
type check struct {
	name string
	run  func(ctx context.Context) (res ctrl.Result, done bool, err error)
}

// analyse runs one analysis step through the chain of checks; when every check passes the
// run advances by its strategy (step).
func (p *pass) analyse(ctx context.Context) (ctrl.Result, error) {
	first := p.firstStep()
	chain := []check{
		{"primary ready", p.checkPrimaryReady},
		{"canary ready", p.checkCanaryReady},
		{"skip analysis", p.checkSkipAnalysis},
		{"manual rollback", p.checkRollbackGate},
		{"failed checks threshold", p.checkThreshold},
		{"interval", func(context.Context) (ctrl.Result, bool, error) { return p.checkInterval(first) }},
		{"hooks and metrics", func(ctx context.Context) (ctrl.Result, bool, error) { return p.checkCanary(ctx, first) }},
	}
	for _, c := range chain {
		res, done, err := c.run(ctx)
		if done || err != nil {
			p.log.V(1).Info("Analysis step decided", "check", c.name, "requeueAfter", res.RequeueAfter)
			return res, err
		}
	}
	if p.c.Status.Phase == flaggerv1.CanaryPhaseWaitingPromotion {
		// A closed gate moves lastTransitionTime (the next check is an interval away); a
		// gate still being asked does not, so the answer is read as soon as it comes.
		return p.confirmPromotion(ctx)
	}
	// Each step records its own time once its writes are done: a step that fails to write is
	// retried soon, not an interval later.
	return p.step(ctx)
}

// firstStep reports whether the run has made no step yet: it runs as soon as the canary is
// ready, with the pre-rollout hooks and without metrics.
func (p *pass) firstStep() bool {
	s := p.c.Status
	return s.Iterations == 0 && s.CanaryWeight == 0 && !p.mirrored
}

// checkPrimaryReady halts the run while the primary is not ready (its users would be served
// by fewer pods than it should have), and rolls back once its progress deadline has passed. A
// primary whose promotion failed is not judged: the run in progress is what can repair it.
func (p *pass) checkPrimaryReady(ctx context.Context) (ctrl.Result, bool, error) {
	if p.c.Status.LastPromotedSpec == "" {
		return ctrl.Result{}, false, nil
	}
	primary := p.primaryReady()
	switch {
	case primary.Failed:
		res, err := p.rollback(ctx, fmt.Sprintf("Primary %s.%s failed: %s", contract.PrimaryName(p.c.Spec.TargetRef.Name), p.c.Namespace, primary.Reason))
		return res, true, err
	case !primary.Ready:
		p.log.Info("Halt advancement: the primary is not ready", "reason", primary.Reason)
		p.setMessage(fmt.Sprintf("Halt advancement: primary not ready: %s", primary.Reason))
		return ctrl.Result{RequeueAfter: p.primaryPoll(primary.FailsAt)}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// checkCanaryReady waits for the canary's pods, and rolls back when they cannot become ready.
func (p *pass) checkCanaryReady(ctx context.Context) (ctrl.Result, bool, error) {
	canary, err := p.canaryReady(ctx)
	switch {
	case err != nil:
		return ctrl.Result{}, true, err
	case canary.Failed:
		res, err := p.rollback(ctx, fmt.Sprintf("Canary %s.%s failed: %s", p.c.Spec.TargetRef.Name, p.c.Namespace, canary.Reason))
		return res, true, err
	case !canary.Ready:
		p.log.V(1).Info("Waiting for the canary", "reason", canary.Reason)
		return ctrl.Result{RequeueAfter: p.waitPoll(canary.FailsAt)}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// checkSkipAnalysis promotes at once when skipAnalysis was set on a run in progress (Flagger's
// way to push a stuck release through) or the analysis was removed.
func (p *pass) checkSkipAnalysis(ctx context.Context) (ctrl.Result, bool, error) {
	if !p.c.SkipAnalysis() {
		return ctrl.Result{}, false, nil
	}
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, true, err
	}
	res, err := p.promote(ctx)
	return res, true, err
}

// checkRollbackGate rolls back when a rollback hook answers with success.
func (p *pass) checkRollbackGate(ctx context.Context) (ctrl.Result, bool, error) {
	open, pending, _, _ := p.gate(ctx, flaggerv1.RollbackHook, p.c.Status.LastAppliedSpec)
	if pending {
		// No step while a rollback may be asked for.
		return ctrl.Result{RequeueAfter: p.c.GetAnalysisInterval()}, true, nil
	}
	if !open {
		return ctrl.Result{}, false, nil
	}
	res, err := p.rollback(ctx, fmt.Sprintf("Rolling back %s.%s manual webhook invoked", p.c.Name, p.c.Namespace))
	return res, true, err
}

// checkThreshold rolls back a run that has failed threshold checks.
func (p *pass) checkThreshold(ctx context.Context) (ctrl.Result, bool, error) {
	c := p.c
	if c.Status.FailedChecks < c.GetAnalysisThreshold() {
		return ctrl.Result{}, false, nil
	}
	res, err := p.rollback(ctx, fmt.Sprintf("Rolling back %s.%s failed checks threshold reached %d", c.Name, c.Namespace, c.Status.FailedChecks))
	return res, true, err
}

// checkInterval waits until an interval has passed since the previous step, counted from it
// so that a reconcile in between does not shift the steps; the first step does not wait.
func (p *pass) checkInterval(first bool) (ctrl.Result, bool, error) {
	c := p.c
	if first && c.Status.FailedChecks == 0 {
		return ctrl.Result{}, false, nil
	}
	if wait := c.Status.LastTransitionTime.Add(c.GetAnalysisInterval()).Sub(p.now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// checkCanary runs the step's hooks and metrics: the first step the pre-rollout hooks, every
// later step the rollout hooks (load tests, acceptance tests) and the metrics, once the canary
// has had an interval of traffic to measure. While the
// promotion waits for approval the canary keeps being checked, so one that degrades meanwhile
// fails instead of being promoted on approval.
func (p *pass) checkCanary(ctx context.Context, first bool) (ctrl.Result, bool, error) {
	c := p.c
	start := p.now
	defer func() { p.r.Metrics.ObserveDuration(c.Spec.TargetRef.Name, c.Namespace, time.Since(start)) }()

	waiting := c.Status.Phase == flaggerv1.CanaryPhaseWaitingPromotion
	var err error
	if first && !waiting {
		// As in Flagger, the first step runs the pre-rollout hooks alone and advances once
		// they pass, so that a pre-rollout hook that passed is never called again for the
		// revision (a later step's failure must not send the run back to its first step).
		err = p.runHooks(ctx, flaggerv1.PreRolloutHook)
	} else {
		err = p.runHooks(ctx, flaggerv1.RolloutHook)
	}
	if errors.Is(err, errHooksPending) {
		// The hook runner wakes this Canary when the calls end; the interval is a fallback.
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, true, nil
	}
	if first && !waiting && c.Status.FailedChecks == 0 {
		p.event(corev1.EventTypeNormal, "Starting canary analysis for %s.%s", c.Spec.TargetRef.Name, c.Namespace)
	}
	if err == nil && (!first || waiting) {
		err = p.checkMetrics(ctx)
	}
	if err != nil {
		res, err := p.failCheck(ctx, err)
		return res, true, err
	}
	return ctrl.Result{}, false, nil
}

// failCheck counts a failed check and rolls back once the threshold is reached.
func (p *pass) failCheck(ctx context.Context, checkErr error) (ctrl.Result, error) {
	c := p.c
	c.Status.FailedChecks++
	c.Status.LastTransitionTime = p.nowTime()
	p.event(corev1.EventTypeWarning, "%v", checkErr)
	if c.Status.FailedChecks >= c.GetAnalysisThreshold() {
		return p.rollback(ctx, fmt.Sprintf("Rolling back %s.%s failed checks threshold reached %d: %v", c.Name, c.Namespace, c.Status.FailedChecks, checkErr))
	}
	// The status says why the run is not advancing, not only the events.
	p.setMessage(fmt.Sprintf("Failed check %d of %d: %v", c.Status.FailedChecks, c.GetAnalysisThreshold(), checkErr))
	return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
}

// confirmPromotion asks the confirm-promotion gates, then promotes.
func (p *pass) confirmPromotion(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	// A blue/green run past its iterations was approved before traffic moved to the canary:
	// the gate is asked once per run.
	approved := p.shifts() && p.strategy() == flaggerv1.StrategyBlueGreen && c.Status.Iterations > p.iterations()
	if !approved {
		ok, pending, msg, halting := p.gate(ctx, flaggerv1.ConfirmPromotionHook, c.Status.LastAppliedSpec)
		if pending {
			return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
		}
		if !ok {
			if c.Status.Phase != flaggerv1.CanaryPhaseWaitingPromotion {
				p.awaitApproval(flaggerv1.CanaryPhaseWaitingPromotion, "Waiting for approval: "+msg, halting)
				p.event(corev1.EventTypeWarning, "Halt %s.%s advancement waiting for promotion approval %s", c.Name, c.Namespace, halting)
			}
			c.Status.LastTransitionTime = p.nowTime()
			return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
		}
	}
	// A blue/green run on a routing provider gives the canary all traffic for one interval
	// of checks before the promotion.
	if p.shifts() && p.strategy() == flaggerv1.StrategyBlueGreen && c.Status.Iterations == p.iterations() {
		return p.switchToCanary(ctx)
	}
	return p.promote(ctx)
}

// gate runs the hooks of a gate type; it is open when every hook answers with success (or
// there is none). For rollback hooks "open" means: roll back, which one hook answering with
// success asks for. hook names the hook that decided (closed the gate, or asked to roll back).
// pending means a hook's call is still running (in the hook runner, off the reconcile
// workers): the gate has not answered yet, and the runner wakes the Canary when it does.
func (p *pass) gate(ctx context.Context, t flaggerv1.HookType, rev string) (open, pending bool, msg, hook string) {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return t != flaggerv1.RollbackHook, false, "", ""
	}
	for _, h := range hooks.Of(analysis.Webhooks, t) {
		done, err := p.callGate(ctx, h, t, rev)
		switch {
		case !done:
			return false, true, "", h.Name
		case t == flaggerv1.RollbackHook && err == nil:
			p.event(corev1.EventTypeWarning, "Rollback check %s passed", h.Name)
			return true, false, h.Name, h.Name
		case t != flaggerv1.RollbackHook && err != nil:
			return false, false, err.Error(), h.Name
		case t != flaggerv1.RollbackHook:
			p.event(corev1.EventTypeNormal, "%s check %s passed", hookTitle(t), h.Name)
		}
	}
	return t != flaggerv1.RollbackHook, false, "", ""
}

// hookTitle is a hook type as Flagger's events name it: "Confirm-rollout", "Pre-rollout", ...
func hookTitle(t flaggerv1.HookType) string {
	s := string(t)
	if s == "" {
		return "Rollout"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// runHooks calls every hook of type t; the first failure is the step's failure, and
// errHooksPending says a call is still running (the hook runner wakes the Canary then).
func (p *pass) runHooks(ctx context.Context, t flaggerv1.HookType) error {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return nil
	}
	rev := p.c.Status.LastAppliedSpec
	for _, h := range hooks.Of(analysis.Webhooks, t) {
		done, err := p.callHook(ctx, h, p.stepKey(t, rev), rev)
		if !done {
			return errHooksPending
		}
		if err != nil {
			// Flagger's words: a pre-rollout check, or an external (rollout) check.
			what := "external"
			if t == flaggerv1.PreRolloutHook {
				what = "pre-rollout"
			}
			return fmt.Errorf("Halt %s.%s advancement %s check %s failed %s", p.c.Name, p.c.Namespace, what, h.Name, err.Error())
		}
		if t == flaggerv1.PreRolloutHook {
			p.event(corev1.EventTypeNormal, "Pre-rollout check %s passed", h.Name)
		}
	}
	return nil
}

// checkMetrics evaluates the analysis metrics; the first failure fails the check (each is
// logged), and every value is exported as flagger_canary_metric_analysis.
func (p *pass) checkMetrics(ctx context.Context) error {
	analysis := p.c.GetAnalysis()
	if analysis == nil || len(analysis.Metrics) == 0 {
		return nil
	}
	var failed error
	// The checker logs each result with its query.
	results := p.r.Checks.Check(ctx, p.c)
	p.recordCheck(results)
	for _, r := range results {
		if r.Err == nil || errors.Is(r.Err, metricchecks.ErrOutOfRange) {
			// Flagger's series: by target, durations in seconds; a value out of range is
			// exported too, it is the one that explains a rollback.
			v := r.Value
			if r.Name == metricchecks.RequestDuration {
				v /= 1000
			}
			p.r.Metrics.SetMetric(p.c.Spec.TargetRef.Name, p.c.Namespace, r.Name, v)
		}
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
	}
	return failed
}

// postRollout calls the post-rollout hooks once a run has ended (announce): through the hook
// runner, whose result nobody waits for (a failure is logged there), or at once without one.
func (p *pass) postRollout(ctx context.Context) {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return
	}
	rev := p.c.Status.LastAppliedSpec
	for _, h := range hooks.Of(analysis.Webhooks, flaggerv1.PostRolloutHook) {
		if p.r.HookRunner != nil {
			_, _ = p.callHook(ctx, h, p.stepKey(flaggerv1.PostRolloutHook, rev), rev)
			continue
		}
		if err := p.r.Hooks.Call(ctx, h, p.hookPayload(h, rev)); err != nil {
			msg := fmt.Sprintf("Post-rollout hook %s failed: %v", h.Name, err)
			p.log.Info(msg, "eventType", corev1.EventTypeWarning)
			p.publish(corev1.EventTypeWarning, msg)
		}
	}
}

// hookPayload is Flagger's payload for hook h: its metadata travels with it.
func (p *pass) hookPayload(h flaggerv1.CanaryWebhook, rev string) hookwire.Payload {
	return hookwire.Payload{Name: p.c.Name, Namespace: p.c.Namespace, Phase: p.c.Status.Phase, Checksum: rev, Metadata: h.Metadata}
}
