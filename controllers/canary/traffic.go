package canary

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
)

// defaultStepWeight is the weight step of a canary run without stepWeight or stepWeights.
// Flagger would add 0 on every step and never reach maxWeight; 10 is its documented example.
const defaultStepWeight = 10

// kubernetesIterations is the number of blue/green iterations of a kubernetes-provider Canary
// without iterations: that provider cannot shift weights, so, as in Flagger, a weighted
// analysis becomes ten blue/green iterations.
const kubernetesIterations = 10

// resolveProvider picks the Canary's provider (spec.provider, else Herald's -mesh-provider)
// and its router. A provider Herald does not implement (the Canary webhook refuses them, but
// it may have been bypassed) is a configuration error.
func (p *pass) resolveProvider() error {
	p.provider = p.c.GetProvider(p.r.Options.MeshProvider)
	if !slices.Contains(flaggerv1.SupportedProviders, p.provider) {
		return stalled("UnsupportedProvider", "spec.provider: %q is not supported: use one of %s", p.provider, strings.Join(flaggerv1.SupportedProviders, ", "))
	}
	p.router = router.For(p.provider, p.r.Client)
	return nil
}

// shifts reports whether the provider moves traffic at the apex.
func (p *pass) shifts() bool { return p.provider != flaggerv1.ProviderKubernetes }

// strategy is the run's strategy as the provider can carry it out.
func (p *pass) strategy() string {
	s := p.c.DeploymentStrategy()
	if !p.shifts() {
		return flaggerv1.StrategyBlueGreen
	}
	return s
}

// iterations is the number of blue/green or A/B iterations of a run.
func (p *pass) iterations() int {
	n := 0
	if a := p.c.GetAnalysis(); a != nil {
		n = a.Iterations
	}
	if n <= 0 && !p.shifts() {
		return kubernetesIterations
	}
	return max(n, 1)
}

// reconcileRoutes creates or corrects the routing objects. A provider whose resources the
// cluster does not serve, or routing the router cannot build or the API server refuses, is a
// configuration problem, reported on the Canary.
func (p *pass) reconcileRoutes(ctx context.Context) error {
	if err := p.router.Reconcile(ctx, p.c); err != nil {
		switch {
		case router.IsNotInstalled(err):
			return stalled("RouterNotInstalled", "%v", err)
		case errors.Is(err, router.ErrRouteRefused):
			return stalled("RouteNotAccepted", "%v", err)
		case router.IsConfigError(err):
			return stalled("InvalidRoute", "%v", err)
		}
		return fmt.Errorf("reconciling %s routes: %w", p.provider, err)
	}
	return nil
}

// route sets the traffic split and records it in the status and metrics.
// The status records the split the run asked for (its step); the routes get servingSplit of
// it, which differs only while one side has no ready pod.
func (p *pass) route(ctx context.Context, primary, canary int, mirrored bool) error {
	if !p.shifts() {
		return nil
	}
	// An A/B test sends the matching requests, not a share of all of them, to the canary.
	if p.strategy() != flaggerv1.StrategyABTesting {
		p.c.Status.CanaryWeight = canary
	}
	sp, sc := p.servingSplit(primary, canary)
	if sp != primary {
		p.log.Info("Routing around a side with no ready pod", "askedPrimaryWeight", primary, "askedCanaryWeight", canary, "primaryWeight", sp, "canaryWeight", sc)
		mirrored = servedMirror(mirrored, sp)
	}
	if err := p.router.SetRoutes(ctx, p.c, sp, sc, mirrored); err != nil {
		return fmt.Errorf("routing %d/%d: %w", sp, sc, err)
	}
	p.r.Metrics.SetWeight(p.c.Spec.TargetRef.Name, p.c.Namespace, sp, sc)
	return nil
}

// servedMirror is whether a mirror asked for stays on once servingSplit gave the primary sp
// percent: a mirror copies the primary's live traffic to the canary; with every user on the
// canary it would send each request there twice.
func servedMirror(mirrored bool, sp int) bool { return mirrored && sp > 0 }

// servingSplit is the split actually routed for an asked one: traffic only ever goes to pods
// that are ready, so the weight of a side with no ready pod goes to the other side when that
// one has ready pods (a failed primary hands its users to a ready canary, and a canary that
// lost its pods hands them back). With neither side ready the asked split stands.
func (p *pass) servingSplit(primary, canary int) (int, int) {
	primaryServes := p.primary != nil && p.primary.ReadyPods() > 0
	canaryServes := p.target != nil && p.target.ReadyPods() > 0
	switch {
	case canary > 0 && !canaryServes && primaryServes:
		return 100, 0
	case primary > 0 && !primaryServes && canaryServes:
		return 0, 100
	}
	return primary, canary
}

// wantedRoutes is the split the status says should be in place; ok is false where the status
// does not determine it (the mirror step of a weighted run, a stepped promotion).
func (p *pass) wantedRoutes() (primary, canary int, mirrored, ok bool) {
	s := p.c.Status
	switch s.Phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseWaiting:
		return 100, 0, false, true
	case flaggerv1.CanaryPhaseFailed:
		// All on the primary, except after a failed promotion (see failedPromotion).
		return 100 - s.CanaryWeight, s.CanaryWeight, false, true
	case flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion:
		switch p.strategy() {
		case flaggerv1.StrategyCanary:
			if s.CanaryWeight == 0 {
				return 0, 0, false, false
			}
			return 100 - s.CanaryWeight, s.CanaryWeight, false, true
		case flaggerv1.StrategyABTesting:
			if s.Iterations == 0 {
				return 100, 0, false, true
			}
			return 0, 100, false, true
		case flaggerv1.StrategyBlueGreen:
			if s.Iterations == 0 {
				return 100, 0, false, true
			}
			if s.Iterations > p.iterations() {
				return 0, 100, false, true
			}
			return 100, 0, p.c.GetAnalysis().Mirror, true
		}
	}
	return 0, 0, false, false
}

// keepRoutes puts back a split that someone changed by hand: the routing objects are Herald's,
// and a stray weight would send users to a version nobody is analysing.
func (p *pass) keepRoutes(ctx context.Context) error {
	if !p.shifts() {
		return nil
	}
	gp, gc, gm, err := p.router.GetRoutes(ctx, p.c)
	p.mirrored = err == nil && gm // the analysis of this pass needs it
	wp, wc, wm, ok := p.wantedRoutes()
	if !ok {
		if err != nil {
			return fmt.Errorf("reading routes: %w", err)
		}
		return nil
	}
	if sp, sc := p.servingSplit(wp, wc); err == nil && gp == sp && gc == sc && gm == servedMirror(wm, sp) {
		return nil
	}
	if err == nil && p.stepAhead(gp, gc, gm) {
		// The last step moved the traffic but its status was not written: the step runs
		// again and sets the same split, so do not move the traffic back in between.
		return nil
	}
	if err == nil {
		p.log.Info("Routes changed outside Herald, restoring them", "primaryWeight", gp, "canaryWeight", gc, "mirrored", gm, "wantPrimaryWeight", wp, "wantCanaryWeight", wc, "wantMirrored", wm)
	}
	p.mirrored = wm
	return p.route(ctx, wp, wc, wm)
}

// stepAhead reports whether a split is the one the next weight step of the status would set.
func (p *pass) stepAhead(primary, canary int, mirrored bool) bool {
	s := p.c.Status
	a := p.c.GetAnalysis()
	if a == nil || p.strategy() != flaggerv1.StrategyCanary || s.Phase != flaggerv1.CanaryPhaseProgressing || mirrored {
		return false
	}
	next := nextWeight(a, s.CanaryWeight, p.c.GetMaxWeight())
	sp, sc := p.servingSplit(100-next, next)
	return canary == sc && primary == sp
}

// step advances the run after a successful check, by the strategy.
func (p *pass) step(ctx context.Context) (ctrl.Result, error) {
	switch p.strategy() {
	case flaggerv1.StrategyCanary:
		return p.stepWeight(ctx)
	case flaggerv1.StrategyABTesting:
		return p.stepIteration(ctx, func() error {
			if p.c.Status.Iterations == 0 {
				return p.route(ctx, 0, 100, false) // the matching requests go to the canary
			}
			return nil
		})
	default:
		return p.stepIteration(ctx, func() error {
			if a := p.c.GetAnalysis(); a != nil && a.Mirror && p.c.Status.Iterations == 0 {
				return p.route(ctx, 100, 0, true) // the canary sees a copy of the traffic
			}
			return nil
		})
	}
}

// stepWeight moves the canary's weight one step up, or, at maxWeight, asks to promote.
func (p *pass) stepWeight(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	s := &c.Status
	interval := c.GetAnalysisInterval()
	if s.CanaryWeight >= c.GetMaxWeight() {
		return p.confirmPromotion(ctx)
	}
	// No mirror step while the primary serves no one: there is no live traffic to copy (the
	// routes send everyone to the canary), and the step would be taken again at every pass.
	if sp, _ := p.servingSplit(100, 0); c.GetAnalysis().Mirror && s.CanaryWeight == 0 && !p.mirrored && sp > 0 {
		if err := p.route(ctx, 100, 0, true); err != nil {
			return ctrl.Result{}, err
		}
		s.LastTransitionTime = p.nowTime()
		p.event(corev1.EventTypeNormal, "Start traffic mirroring to %s.%s", c.Spec.TargetRef.Name, c.Namespace)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	ok, pending, msg, halting := p.gate(ctx, flaggerv1.ConfirmTrafficIncreaseHook, s.LastAppliedSpec)
	if pending {
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	if !ok {
		s.LastTransitionTime = p.nowTime()
		p.event(corev1.EventTypeWarning, "Halt %s.%s advancement waiting for traffic increase approval %s", c.Name, c.Namespace, halting)
		p.awaitTrafficIncrease(halting, msg)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	next := nextWeight(c.GetAnalysis(), s.CanaryWeight, c.GetMaxWeight())
	if err := p.route(ctx, 100-next, next, false); err != nil {
		return ctrl.Result{}, err
	}
	s.LastTransitionTime = p.nowTime()
	p.event(corev1.EventTypeNormal, "Advance %s.%s canary weight %d", c.Name, c.Namespace, next)
	return ctrl.Result{RequeueAfter: interval}, nil
}

// nextWeight is the canary weight after current: stepWeight up, or the next rung of
// stepWeights (stepWeight wins when both are set, as in Flagger), capped at maxWeight.
func nextWeight(a *flaggerv1.CanaryAnalysis, current, maxWeight int) int {
	if a.StepWeight <= 0 && len(a.StepWeights) > 0 {
		for _, w := range a.StepWeights {
			if w > current {
				return min(w, maxWeight)
			}
		}
		return maxWeight
	}
	step := a.StepWeight
	if step <= 0 {
		step = defaultStepWeight
	}
	return min(current+step, maxWeight)
}

// stepIteration counts one blue/green or A/B iteration (first applying the strategy's routes),
// and once all have passed asks to promote.
func (p *pass) stepIteration(ctx context.Context, routes func() error) (ctrl.Result, error) {
	c := p.c
	s := &c.Status
	want := p.iterations()
	if s.Iterations >= want {
		return p.confirmPromotion(ctx)
	}
	if err := routes(); err != nil {
		return ctrl.Result{}, err
	}
	s.Iterations++
	s.LastTransitionTime = p.nowTime()
	p.event(corev1.EventTypeNormal, "Advance %s.%s canary iteration %d/%d", c.Name, c.Namespace, s.Iterations, want)
	// The promotion is asked for on the next step, after one more check: a run of N
	// iterations has N metric checks, the first step having none.
	return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
}

// switchToCanary is the last step of a blue/green run on a routing provider: once approved,
// all traffic goes to the canary for one more interval of checks before the promotion.
func (p *pass) switchToCanary(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	if err := p.route(ctx, 0, 100, false); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.Iterations = p.iterations() + 1
	c.Status.LastTransitionTime = p.nowTime()
	if c.Status.Phase != flaggerv1.CanaryPhaseProgressing {
		p.setPhase(flaggerv1.CanaryPhaseProgressing, "Promotion approved, routing all traffic to the canary.")
	}
	p.event(corev1.EventTypeNormal, "Routing all traffic to canary %s.%s", c.Spec.TargetRef.Name, c.Namespace)
	return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
}

// promotionShift moves traffic back to the primary once it runs the promoted revision: all at
// once, or stepWeightPromotion per interval. done reports that the primary has it all.
func (p *pass) promotionShift(ctx context.Context) (done bool, res ctrl.Result, err error) {
	c := p.c
	if !p.shifts() {
		return true, ctrl.Result{}, nil
	}
	step := 0
	if a := c.GetAnalysis(); a != nil {
		step = a.StepWeightPromotion
	}
	primary, _, _, err := p.router.GetRoutes(ctx, c)
	if err != nil {
		return false, ctrl.Result{}, fmt.Errorf("reading routes: %w", err)
	}
	if step <= 0 || primary >= 100 {
		if err := p.route(ctx, 100, 0, false); err != nil {
			return false, ctrl.Result{}, err
		}
		if primary < 100 {
			p.event(corev1.EventTypeNormal, "Routing all traffic to primary")
		}
		return true, ctrl.Result{}, nil
	}
	// One step per interval, counted from the previous step (or the start of the promotion).
	if wait := c.Status.LastTransitionTime.Add(c.GetAnalysisInterval()).Sub(p.now); wait > 0 {
		return false, ctrl.Result{RequeueAfter: wait}, nil
	}
	next := min(100, primary+step)
	if err := p.route(ctx, next, 100-next, false); err != nil {
		return false, ctrl.Result{}, err
	}
	c.Status.LastTransitionTime = p.nowTime()
	p.event(corev1.EventTypeNormal, "Advance %s.%s primary weight %d", c.Name, c.Namespace, next)
	return next == 100, ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
}
