package canary

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/internal/contract"
)

// run does the work of the Canary's phase and returns when to come back.
func (p *pass) run(ctx context.Context) (_ ctrl.Result, err error) {
	c := p.c
	defer func() {
		if isTerminal(err) {
			if gerr := p.guardStalledRun(ctx); gerr != nil {
				// The stall stays shown; the guard tries again on the next pass (soon if
				// someone else's write of the route got in first, see ownwrites.go).
				p.log.Error(gerr, "Could not route around a side with no ready pod", "stall", err.Error())
			}
		}
	}()
	if err := p.loadTarget(ctx); err != nil {
		if errors.Is(err, errTargetNotFound) {
			// The watch on the target's kind brings us back when it appears.
			return ctrl.Result{}, stalled("TargetNotFound", "%s %s.%s not found, waiting for it", targetKind(c), c.Spec.TargetRef.Name, c.Namespace)
		}
		return ctrl.Result{}, err
	}
	if err := p.checkReferences(ctx); err != nil {
		return ctrl.Result{}, err
	}

	initializing := c.Status.Phase == "" || c.Status.Phase == flaggerv1.CanaryPhaseInitializing
	if !initializing {
		// While initialising, initialize() writes them once the primary exists, so that they
		// are made with their final owner rather than changed again (each change wakes the
		// Canary once more).
		if err := p.syncServices(ctx, true); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := p.resolveProvider(); err != nil {
		return ctrl.Result{}, err
	}
	if !initializing {
		// Every pass corrects the routing objects (direct edits are overwritten) and the split.
		if err := p.reconcileRoutes(ctx); err != nil {
			return ctrl.Result{}, err
		}
		if err := p.keepRoutes(ctx); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Requests made with `kubectl herald` (requests.go), and a paused analysis.
	if res, done, err := p.handleRequests(ctx); done {
		return res, err
	}

	switch c.Status.Phase {
	case "", flaggerv1.CanaryPhaseInitializing:
		return p.initialize(ctx)
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed, flaggerv1.CanaryPhaseWaiting:
		if err := p.syncPrimaryReplicas(ctx); err != nil {
			return ctrl.Result{}, err
		}
		return p.detect(ctx)
	case flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion:
		if p.rev != c.Status.LastAppliedSpec {
			p.event(corev1.EventTypeNormal, "New revision detected! Restarting analysis for %s.%s", c.Spec.TargetRef.Name, c.Namespace)
			if err := p.route(ctx, 100, 0, false); err != nil {
				return ctrl.Result{}, err
			}
			p.resetRun()
			if c.Status.Phase != flaggerv1.CanaryPhaseProgressing {
				// An approval asked for the previous revision does not carry over.
				p.setPhase(flaggerv1.CanaryPhaseProgressing, "New revision detected, restarting the canary analysis.")
			}
			return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
		}
		return p.analyse(ctx)
	case flaggerv1.CanaryPhasePromoting:
		return p.pendingRevision(p.promoting(ctx))
	case flaggerv1.CanaryPhaseFinalising:
		return p.pendingRevision(p.finalising(ctx))
	}
	return ctrl.Result{}, nil
}

// pendingRevision comes back at once when a promotion has just ended (Succeeded or Failed)
// while the target already holds a newer revision. The change was seen by a pass of the
// promotion, which does not restart for it, and nothing else is bound to wake the Canary: the
// target's status is not watched once it is idle, the event of the scale-down patch may be
// handled before the cache shows the new phase, and the pass's own route and primary updates
// wake nothing (ownwrites.go). A failed promotion that hands the users to the canary writes
// only the route.
func (p *pass) pendingRevision(res ctrl.Result, err error) (ctrl.Result, error) {
	phase := p.c.Status.Phase
	if err != nil || res.RequeueAfter > 0 || p.rev == "" || p.rev == p.c.Status.LastAppliedSpec ||
		(phase != flaggerv1.CanaryPhaseSucceeded && phase != flaggerv1.CanaryPhaseFailed) {
		return res, err
	}
	p.log.Info("A newer revision came during the promotion: analysing it next", "promoted", p.c.Status.LastAppliedSpec)
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// targetKind is the Canary's target kind as users write it (Deployment when unset).
func targetKind(c *flaggerv1.Canary) string {
	if c.Spec.TargetRef.Kind == "" {
		return "Deployment"
	}
	return c.Spec.TargetRef.Kind
}

// initialize creates the primary and its companions, waits until the primary is ready, then
// scales the target to zero and marks it idle.
func (p *pass) initialize(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	if c.Status.Phase == "" {
		p.setPhase(flaggerv1.CanaryPhaseInitializing, fmt.Sprintf("New %s detected, starting initialization.", p.target.Kind()))
	}
	if err := p.syncPrimaryConfigs(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncPrimary(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncHPA(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncServices(ctx, false); err != nil {
		return ctrl.Result{}, err
	}
	primary := p.primaryReady()
	if primary.Failed {
		return ctrl.Result{}, stalled("PrimaryNotReady", "Primary %s.%s cannot become ready: %s", contract.PrimaryName(c.Spec.TargetRef.Name), c.Namespace, primary.Reason)
	}
	if !primary.Ready {
		p.log.V(1).Info("Waiting for the primary", "reason", primary.Reason)
		return ctrl.Result{RequeueAfter: p.primaryPoll(primary.FailsAt)}, nil
	}
	// The primary serves now: the apex Service and the routes may point at it, then the
	// target can go.
	if err := p.syncServices(ctx, true); err != nil {
		return ctrl.Result{}, err
	}
	// The routing objects are created with all traffic on the primary (the status weight is 0).
	if err := p.reconcileRoutes(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.r.Metrics.SetWeight(c.Spec.TargetRef.Name, c.Namespace, 100, 0)
	if err := p.scaleToZero(ctx, p.rev); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.LastAppliedSpec, c.Status.LastPromotedSpec = p.rev, p.rev
	c.Status.TrackedConfigs = p.configs
	p.setPhase(flaggerv1.CanaryPhaseInitialized, fmt.Sprintf("%s initialization completed.", p.target.Kind()))
	return ctrl.Result{}, nil
}

// detect starts an analysis when the target has a revision that is neither the one last
// analysed nor the one promoted (a manual rollback to the promoted spec is not a new revision).
func (p *pass) detect(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	rev := p.rev
	waitingOrFailed := c.Status.Phase == flaggerv1.CanaryPhaseWaiting || c.Status.Phase == flaggerv1.CanaryPhaseFailed
	if rev == c.Status.LastPromotedSpec {
		if rev == c.Status.LastAppliedSpec && !waitingOrFailed {
			c.Status.TrackedConfigs = p.configs // steady state
			return ctrl.Result{}, p.keepIdle(ctx, rev)
		}
		// Back to the promoted revision (a manual rollback, or an unapproved change undone):
		// nothing to analyse, but the target may run pods again, and a later re-apply of the
		// other revision must count as new. A canary that holds the users (the primary had no
		// ready pod) keeps them, and its pods, until the primary serves.
		if c.Status.CanaryWeight == 100 {
			if !p.primaryReady().Ready {
				return ctrl.Result{}, nil
			}
			if err := p.route(ctx, 100, 0, false); err != nil {
				return ctrl.Result{}, err
			}
			c.Status.CanaryWeight = 0
		}
		if err := p.scaleToZero(ctx, rev); err != nil {
			return ctrl.Result{}, err
		}
		c.Status.LastAppliedSpec, c.Status.TrackedConfigs = rev, p.configs
		if waitingOrFailed {
			p.setPhase(flaggerv1.CanaryPhaseSucceeded, "Back to the promoted revision.")
		}
		return ctrl.Result{}, nil
	}
	if rev == c.Status.LastAppliedSpec && c.Status.Phase != flaggerv1.CanaryPhaseWaiting {
		// A failed revision is retried only with a new template; meanwhile the target runs
		// no pods, unless it holds the traffic because the primary has none ready.
		if c.Status.CanaryWeight == 100 {
			return p.handBackToPrimary(ctx, rev)
		}
		return ctrl.Result{}, p.keepIdle(ctx, rev)
	}
	ok, pending, msg, halting := p.gate(ctx, flaggerv1.ConfirmRolloutHook, rev)
	if pending {
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
	}
	if !ok {
		if c.Status.Phase != flaggerv1.CanaryPhaseWaiting {
			p.awaitApproval(flaggerv1.CanaryPhaseWaiting, "Waiting for approval: "+msg, halting)
			p.event(corev1.EventTypeWarning, "Halt %s.%s advancement waiting for approval %s", c.Name, c.Namespace, halting)
		}
		// An unapproved revision runs no pods either.
		if c.Status.CanaryWeight == 100 {
			return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
		}
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, p.keepIdle(ctx, rev)
	}
	p.observeDetection()
	// Even without an analysis the canary runs first: the promotion waits until it is ready
	// (the analysis chain's first check), so that a primary that then fails to roll out can
	// hand its traffic to pods that serve.
	if err := p.scaleUp(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.resetRun()
	p.setPhase(flaggerv1.CanaryPhaseProgressing, "New revision detected, progressing canary analysis.")
	return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
}

// handBackToPrimary ends the hand-over of a failed run to the canary once it is no longer
// needed. After a failed promotion (lastPromotedSpec cleared) the primary runs the failed
// revision and the canary keeps the users until a new revision repairs it. After a rollback
// while the primary had no ready pod, the primary runs the promoted revision: once it serves
// again (its watch wakes the Canary), the users go back to it and the canary is scaled down.
func (p *pass) handBackToPrimary(ctx context.Context, rev string) (ctrl.Result, error) {
	c := p.c
	// Ready as a whole, not one pod: the canary's pods go in the same pass.
	if c.Status.LastPromotedSpec == "" || !p.primaryReady().Ready {
		return ctrl.Result{}, nil
	}
	p.event(corev1.EventTypeNormal, "Primary %s.%s serves again: routing all traffic back to it", contract.PrimaryName(c.Spec.TargetRef.Name), c.Namespace)
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.CanaryWeight = 0
	return ctrl.Result{}, p.keepIdle(ctx, rev)
}

// resetRun starts a new analysis run of the pass's revision.
func (p *pass) resetRun() {
	s := &p.c.Status
	s.LastAppliedSpec, s.TrackedConfigs = p.rev, p.configs
	s.Iterations, s.FailedChecks, s.CanaryWeight = 0, 0, 0
	s.LastTransitionTime = p.nowTime()
}

// promote copies the target's template and its tracked configs to the primary.
func (p *pass) promote(ctx context.Context) (ctrl.Result, error) {
	if err := p.syncPrimaryConfigs(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncPrimary(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncHPA(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhasePromoting, "Canary analysis completed, starting primary rolling update.")
	return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
}

// promoting waits for the primary's rollout; the primary's watch events bring us back.
func (p *pass) promoting(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	if p.primaryRevision() != c.Status.LastAppliedSpec {
		// The primary (or our cache of it) has not taken the promotion yet.
		return ctrl.Result{RequeueAfter: p.primaryPoll(time.Time{})}, nil
	}
	primary := p.primaryReady()
	if primary.Failed {
		// The primary now runs the failed revision: whatever comes next, including the old
		// version, must be analysed and promoted again.
		c.Status.LastPromotedSpec = ""
		return p.failedPromotion(ctx, fmt.Sprintf("Promotion of %s.%s failed: primary %s", c.Name, c.Namespace, primary.Reason))
	}
	if !primary.Ready {
		return ctrl.Result{RequeueAfter: p.primaryPoll(primary.FailsAt)}, nil
	}
	done, res, err := p.promotionShift(ctx)
	if err != nil || !done {
		return res, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFinalising, "Canary analysis completed, routing all traffic to primary.")
	return p.finalising(ctx)
}

// finalising scales the target down and records the promotion.
func (p *pass) finalising(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.scaleToZero(ctx, c.Status.LastAppliedSpec); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.LastPromotedSpec = c.Status.LastAppliedSpec
	p.setPhase(flaggerv1.CanaryPhaseSucceeded, "Canary analysis completed successfully, promotion finished.")
	return ctrl.Result{}, nil
}

// rollback ends a run that failed: traffic back to the primary, the canary scaled down. When
// the primary has no ready pod (a failed promotion left it broken, or its pods went away
// during the run), the canary keeps the traffic instead, rather than nothing serving it.
func (p *pass) rollback(ctx context.Context, why string) (ctrl.Result, error) {
	if p.shifts() && (p.primary == nil || p.primary.ReadyPods() == 0) && p.target.ReadyPods() > 0 {
		return p.handOverToCanary(ctx, why+" (the primary has no ready pod, so the canary keeps the traffic)")
	}
	return p.fail(ctx, why)
}

// failedPromotion ends a run whose primary could not roll out the promoted revision. Where
// traffic can move and the canary, which runs the same revision, is ready, it gets the traffic
// and keeps its pods; otherwise the primary keeps the traffic.
func (p *pass) failedPromotion(ctx context.Context, why string) (ctrl.Result, error) {
	if p.shifts() && p.target.ReadyPods() > 0 {
		return p.handOverToCanary(ctx, why)
	}
	return p.fail(ctx, why)
}

// fail routes everything to the primary, scales the canary down and marks the run failed.
func (p *pass) fail(ctx context.Context, why string) (ctrl.Result, error) {
	c := p.c
	p.event(corev1.EventTypeWarning, "%s", why)
	// Users leave the canary before its pods do.
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.scaleToZero(ctx, c.Status.LastAppliedSpec); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFailed, fmt.Sprintf("Canary analysis failed, %s scaled to zero: %s", p.target.Kind(), why))
	return ctrl.Result{}, nil
}

// handOverToCanary routes everything to the canary, which keeps its pods, and marks the run
// failed.
func (p *pass) handOverToCanary(ctx context.Context, why string) (ctrl.Result, error) {
	c := p.c
	p.event(corev1.EventTypeWarning, "%s", why)
	if err := p.route(ctx, 0, 100, false); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFailed, "Canary run failed with no ready primary, all traffic routed to the canary: "+why)
	c.Status.CanaryWeight = 100
	return ctrl.Result{}, nil
}

// scaleToZero scales the target down and marks it idle at rev, which tells the workload
// webhook to keep it at zero through re-applies of the same manifest.
func (p *pass) scaleToZero(ctx context.Context, rev string) error { return p.idle(ctx, rev, false) }

// keepIdle scales a target that must run no pods back to zero, idle at rev: replicas given to
// it behind Herald's back (kubectl scale or apply while the webhook was down, a write that
// dropped Herald's label, a DaemonSet whose scale-to-zero node selector was removed). The
// replicas it was given are kept as a wish for the primary, as the webhook keeps them.
func (p *pass) keepIdle(ctx context.Context, rev string) error { return p.idle(ctx, rev, true) }

// idle scales the target to zero at rev. The replicas it ran with stay as the user's wish
// (contract.AnnotationDesiredReplicas): after a release, that is what the workload webhook
// records when a GitOps loop re-applies them to the idle target, so the first re-apply finds
// the annotation already there and Flux's dry-run shows no drift; with an autoscaler those
// replicas were the autoscaler's, not a wish. Replicas given behind Herald's back are a wish
// in any case.
func (p *pass) idle(ctx context.Context, rev string, behindBack bool) error {
	if p.target.Idle(rev) {
		return nil
	}
	changed := p.target.Copy()
	if r := p.target.Replicas(); r != nil && *r > 0 && (behindBack || p.c.Spec.AutoscalerRef == nil) {
		annotations := changed.Object().GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[contract.AnnotationDesiredReplicas] = strconv.Itoa(int(*r))
		changed.Object().SetAnnotations(annotations)
		if behindBack {
			p.log.Info("Scaling the idle target back to zero", "kind", p.target.Kind(), "replicas", *r)
		}
	}
	changed.ScaleToZero(rev)
	if err := p.patch(ctx, changed.Object(), p.target.Object()); err != nil {
		return err
	}
	p.target = changed
	return nil
}

// scaleUp starts the canary: the target gets the primary's size (or the user's wish) and is
// no longer idle.
func (p *pass) scaleUp(ctx context.Context) error {
	changed := p.target.Copy()
	n := int32(1)
	if r := p.desiredReplicas(); r != nil {
		n = *r
	}
	changed.ScaleUp(n)
	// The target's status updates that follow must wake this Canary, though neither the cache
	// nor the end of this pass says so yet.
	p.r.readsTarget.Store(types.NamespacedName{Namespace: p.c.Namespace, Name: p.c.Name}, true)
	if err := p.patch(ctx, changed.Object(), p.target.Object()); err != nil {
		return err
	}
	p.target = changed
	return nil
}

// primaryRevision is the revision the primary's template was last promoted to.
func (p *pass) primaryRevision() string {
	if p.primary == nil {
		return ""
	}
	return p.primary.Template().Annotations[contract.AnnotationPromotedRevision]
}

// primaryReady judges the primary's rollout.
func (p *pass) primaryReady() workloads.Readiness {
	if p.primary == nil {
		return workloads.Readiness{Reason: "primary not created yet"}
	}
	c := p.c
	return p.primary.Ready(c.GetAnalysisPrimaryReadyThreshold(), c.Status.LastTransitionTime.Time, c.GetProgressDeadline(), p.now)
}

// guardStalledRun keeps users off a side with no ready pod while a run in progress is stalled
// (its target deleted, a config or an AlertProvider gone): the pass stops before it corrects
// the routes, and the canary's share would otherwise go to pods that may no longer exist until
// the stall is fixed. It routes the run's split as servingSplit carries it out. The error is
// the routing write's; the guard gives up quietly when it cannot tell what serves.
func (p *pass) guardStalledRun(ctx context.Context) error {
	switch p.c.Status.Phase {
	case "", flaggerv1.CanaryPhaseInitializing, flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed:
		return nil
	}
	if p.router == nil && p.resolveProvider() != nil {
		return nil
	}
	if !p.shifts() {
		return nil
	}
	if p.primary == nil {
		w, err := workloads.New(targetKind(p.c))
		if err != nil {
			return nil
		}
		if found, err := p.get(ctx, contract.PrimaryName(p.c.Spec.TargetRef.Name), w.Object()); err != nil || !found {
			return nil
		}
		p.primary = w
	}
	gp, gc, gm, err := p.router.GetRoutes(ctx, p.c)
	if err != nil {
		return nil
	}
	// From the split the run asks for, not the one in place: a side that serves again gets
	// its share back.
	wp, wc, wm, ok := p.wantedRoutes()
	if !ok {
		wp, wc, wm = gp, gc, gm
	}
	sp, sc := p.servingSplit(wp, wc)
	mirrored := servedMirror(wm, sp)
	if sp == gp && sc == gc && mirrored == gm {
		return nil
	}
	p.log.Info("Run stalled: routing around a side with no ready pod", "primaryWeight", sp, "canaryWeight", sc)
	if err := p.router.SetRoutes(ctx, p.c, sp, sc, mirrored); err != nil {
		return fmt.Errorf("routing around a side with no ready pod: %w", err)
	}
	p.r.Metrics.SetWeight(p.c.Spec.TargetRef.Name, p.c.Namespace, sp, sc)
	return nil
}

// maxWaitPoll bounds waitPoll.
const maxWaitPoll = 30 * time.Second

// waitPoll is when a pass that waits for a rollout looks again. The watches on the target and
// the primary wake the Canary as soon as their status moves, so the timer only catches what no
// event announces: a pod entering a crash loop, a progress deadline passing. It starts at
// PodPollInterval and stretches with the wait (a quarter of the time waited, at most
// maxWaitPoll), so that a thousand Canaries waiting for pods do not each poll every 2 s, and
// it never sleeps past the deadline: failsAt, the readiness judgement's, else the Canary's
// progress deadline from its last transition.
func (p *pass) waitPoll(failsAt time.Time) time.Duration {
	base := p.r.Options.PodPollInterval
	waited, untilDeadline := p.waited(failsAt)
	d := min(max(base, waited/4), max(base, maxWaitPoll))
	if untilDeadline > 0 {
		d = min(d, untilDeadline)
	}
	return d
}

// waited is how long the wait has lasted, and the time until just past the deadline (so that
// the pass then judges it passed); 0 once it has passed. The deadline is failsAt when set: a
// Deployment's counts from when it lost its available pods, which may be well after the wait
// began, and a look at the Canary's deadline alone would find it not yet failed and sleep on.
func (p *pass) waited(failsAt time.Time) (waited, untilDeadline time.Duration) {
	waited = p.now.Sub(p.c.Status.LastTransitionTime.Time)
	if failsAt.IsZero() {
		failsAt = p.c.Status.LastTransitionTime.Add(p.c.GetProgressDeadline())
	}
	if left := failsAt.Sub(p.now); left > 0 {
		untilDeadline = left + 100*time.Millisecond
	}
	return waited, untilDeadline
}

// maxPrimaryPoll bounds primaryPoll: a safety net, should an event ever be missed.
const maxPrimaryPoll = 5 * time.Minute

// primaryPoll is when a pass that waits for the primary's rollout looks again. Unlike the
// canary's, the primary's pods are not judged one by one, so every change the wait reads comes
// with an event of the primary's watch: the timer is only for the deadline (failsAt, as
// waited takes it). A thousand Canaries initialising at once then poll nothing while the
// control plane starts their pods.
func (p *pass) primaryPoll(failsAt time.Time) time.Duration {
	if _, untilDeadline := p.waited(failsAt); untilDeadline > 0 {
		return min(untilDeadline, maxPrimaryPoll)
	}
	return maxWaitPoll
}

// canaryReady judges the target's rollout; pods that crash-loop or cannot pull their image
// fail the canary at once instead of waiting out the progress deadline.
func (p *pass) canaryReady(ctx context.Context) (workloads.Readiness, error) {
	c := p.c
	r := p.target.Ready(c.GetAnalysisCanaryReadyThreshold(), c.Status.LastTransitionTime.Time, c.GetProgressDeadline(), p.now)
	if r.Ready || r.Failed {
		return r, nil
	}
	pods, err := p.target.CurrentPods(ctx, p.r.APIReader, p.label, p.value)
	if err != nil {
		return r, fmt.Errorf("canary pods: %w", err)
	}
	if why, failing := workloads.PodsFailing(pods); failing {
		return workloads.Readiness{Failed: true, Reason: why}, nil
	}
	return r, nil
}
