package canary

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/controllers/metrics"
	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/webhooks/meta"
)

// run does the work of the Canary's phase and returns when to come back.
func (p *pass) run(ctx context.Context) (ctrl.Result, error) {
	c := p.c
	t, err := p.getTarget(ctx)
	if apierrors.IsNotFound(err) {
		// The watch on the target's kind brings us back when it appears.
		p.eventOnce(corev1.EventTypeWarning, "%s %s.%s not found, waiting for it", c.Spec.TargetRef.Kind, c.Spec.TargetRef.Name, c.Namespace)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := p.ensureTargetLabel(ctx, t); err != nil {
		return ctrl.Result{}, err
	}
	configs, refs, err := p.trackConfigs(ctx, t)
	if err != nil {
		return ctrl.Result{}, err
	}
	rev, err := revision.Of(t.template, configs)
	if err != nil {
		return ctrl.Result{}, err
	}
	p.log = p.log.WithValues("revision", rev)

	initializing := c.Status.Phase == "" || c.Status.Phase == flaggerv1.CanaryPhaseInitializing
	if err := p.syncServices(ctx, t, !initializing); err != nil {
		return ctrl.Result{}, err
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

	switch c.Status.Phase {
	case "", flaggerv1.CanaryPhaseInitializing:
		return p.initialize(ctx, t, rev, configs, refs)
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed, flaggerv1.CanaryPhaseWaiting:
		if err := p.syncPrimaryReplicas(ctx, t); err != nil {
			return ctrl.Result{}, err
		}
		return p.detect(ctx, t, rev, configs, refs)
	case flaggerv1.CanaryPhaseProgressing, flaggerv1.CanaryPhaseWaitingPromotion:
		if rev != c.Status.LastAppliedSpec {
			p.event(corev1.EventTypeNormal, "New revision detected! Restarting analysis for %s.%s", c.Spec.TargetRef.Name, c.Namespace)
			if err := p.route(ctx, 100, 0, false); err != nil {
				return ctrl.Result{}, err
			}
			p.resetRun(rev, configs)
			if c.Status.Phase != flaggerv1.CanaryPhaseProgressing {
				// An approval asked for the previous revision does not carry over.
				p.setPhase(flaggerv1.CanaryPhaseProgressing, "New revision detected, restarting the canary analysis.")
			}
			return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
		}
		return p.analyse(ctx, t, refs)
	case flaggerv1.CanaryPhasePromoting:
		return p.promoting(ctx, t)
	case flaggerv1.CanaryPhaseFinalising:
		return p.finalising(ctx, t)
	}
	return ctrl.Result{}, nil
}

// initialize creates the primary and its companions, waits until the primary is ready, then
// scales the target to zero and marks it idle.
func (p *pass) initialize(ctx context.Context, t *target, rev string, configs map[string]string, refs []revision.Ref) (ctrl.Result, error) {
	c := p.c
	if c.Status.Phase == "" {
		p.setPhase(flaggerv1.CanaryPhaseInitializing, "New Deployment detected, starting initialization.")
	}
	if err := p.syncPrimaryConfigs(ctx, refs); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncPrimary(ctx, t, refs); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncHPA(ctx, t); err != nil {
		return ctrl.Result{}, err
	}
	ready, reason, failed, err := p.primaryReady(ctx, t)
	if err != nil {
		return ctrl.Result{}, err
	}
	if failed {
		p.event(corev1.EventTypeWarning, "Primary %s.%s cannot become ready: %s", workloads.PrimaryName(t.obj.GetName()), c.Namespace, reason)
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
	}
	if !ready {
		p.log.V(1).Info("Waiting for the primary", "reason", reason)
		return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
	}
	// The primary serves now: the apex Service and the routes may point at it, then the
	// target can go.
	if err := p.syncServices(ctx, t, true); err != nil {
		return ctrl.Result{}, err
	}
	// The routing objects are created with all traffic on the primary (the status weight is 0).
	if err := p.reconcileRoutes(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.r.Metrics.SetWeight(c.Spec.TargetRef.Name, c.Namespace, 100, 0)
	if err := p.scaleToZero(ctx, t, rev); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.LastAppliedSpec, c.Status.LastPromotedSpec = rev, rev
	c.Status.TrackedConfigs = configs
	p.setPhase(flaggerv1.CanaryPhaseInitialized, "Deployment initialization completed.")
	p.event(corev1.EventTypeNormal, "Initialization done! %s.%s", c.Name, c.Namespace)
	return ctrl.Result{}, nil
}

// detect starts an analysis when the target has a revision that is neither the one last
// analysed nor the one promoted (a manual rollback to the promoted spec is not a new revision).
func (p *pass) detect(ctx context.Context, t *target, rev string, configs map[string]string, refs []revision.Ref) (ctrl.Result, error) {
	c := p.c
	waitingOrFailed := c.Status.Phase == flaggerv1.CanaryPhaseWaiting || c.Status.Phase == flaggerv1.CanaryPhaseFailed
	if rev == c.Status.LastPromotedSpec {
		if rev == c.Status.LastAppliedSpec && !waitingOrFailed {
			c.Status.TrackedConfigs = configs // steady state
			return ctrl.Result{}, nil
		}
		// Back to the promoted revision (a manual rollback, or an unapproved change undone):
		// nothing to analyse, but the target may run pods again, and a later re-apply of the
		// other revision must count as new.
		if err := p.scaleToZero(ctx, t, rev); err != nil {
			return ctrl.Result{}, err
		}
		c.Status.LastAppliedSpec, c.Status.TrackedConfigs = rev, configs
		if waitingOrFailed {
			p.setPhase(flaggerv1.CanaryPhaseSucceeded, "Back to the promoted revision.")
		}
		return ctrl.Result{}, nil
	}
	if rev == c.Status.LastAppliedSpec && c.Status.Phase != flaggerv1.CanaryPhaseWaiting {
		return ctrl.Result{}, nil // a failed revision is retried only with a new template
	}
	if ok, msg, halting := p.gate(ctx, flaggerv1.ConfirmRolloutHook, rev); !ok {
		if c.Status.Phase != flaggerv1.CanaryPhaseWaiting {
			p.awaitApproval(flaggerv1.CanaryPhaseWaiting, "Waiting for approval.", halting)
			p.event(corev1.EventTypeNormal, "Halt %s.%s advancement waiting for approval %s", c.Name, c.Namespace, msg)
		}
		return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
	}
	p.observeDetection(t)
	p.event(corev1.EventTypeNormal, "New revision detected! Scaling up %s.%s", c.Spec.TargetRef.Name, c.Namespace)
	if c.SkipAnalysis() {
		p.resetRun(rev, configs)
		return p.promote(ctx, t, refs)
	}
	primary, err := p.getPrimary(ctx, t)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := p.scaleUp(ctx, t, primary); err != nil {
		return ctrl.Result{}, err
	}
	p.resetRun(rev, configs)
	p.setPhase(flaggerv1.CanaryPhaseProgressing, "New revision detected, progressing canary analysis.")
	return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
}

// resetRun starts a new analysis run of rev.
func (p *pass) resetRun(rev string, configs map[string]string) {
	s := &p.c.Status
	s.LastAppliedSpec, s.TrackedConfigs = rev, configs
	s.Iterations, s.FailedChecks, s.CanaryWeight = 0, 0, 0
	s.LastTransitionTime = p.nowTime()
}

// analyse runs one analysis step when the interval since the last one has passed.
func (p *pass) analyse(ctx context.Context, t *target, refs []revision.Ref) (ctrl.Result, error) {
	c := p.c
	interval := c.GetAnalysisInterval()

	ready, reason, failed, err := p.canaryReady(ctx, t)
	if err != nil {
		return ctrl.Result{}, err
	}
	if failed {
		return p.rollback(ctx, t, fmt.Sprintf("Canary %s.%s failed: %s", c.Spec.TargetRef.Name, c.Namespace, reason))
	}
	if !ready {
		p.log.V(1).Info("Waiting for the canary", "reason", reason)
		return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
	}
	if c.SkipAnalysis() {
		// Set on a run in progress (Flagger's way to push a stuck release through), or the
		// analysis was removed: promote now.
		if err := p.route(ctx, 100, 0, false); err != nil {
			return ctrl.Result{}, err
		}
		return p.promote(ctx, t, refs)
	}
	if ok, _, _ := p.gate(ctx, flaggerv1.RollbackHook, c.Status.LastAppliedSpec); ok {
		return p.rollback(ctx, t, fmt.Sprintf("Rolling back %s.%s manual webhook invoked", c.Name, c.Namespace))
	}
	if c.Status.FailedChecks >= c.GetAnalysisThreshold() {
		return p.rollback(ctx, t, fmt.Sprintf("Rolling back %s.%s failed checks threshold reached %d", c.Name, c.Namespace, c.Status.FailedChecks))
	}

	// The first step runs as soon as the canary is ready; later ones one interval apart,
	// counted from the previous step so that a reconcile in between does not shift them.
	first := c.Status.Iterations == 0 && c.Status.CanaryWeight == 0 && !p.mirrored
	if !first || c.Status.FailedChecks > 0 {
		if wait := c.Status.LastTransitionTime.Add(interval).Sub(p.now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	start := p.now
	defer func() { p.r.Metrics.ObserveDuration(c.Spec.TargetRef.Name, c.Namespace, time.Since(start)) }()

	if c.Status.Phase == flaggerv1.CanaryPhaseWaitingPromotion {
		// While the promotion waits for approval the canary keeps being checked, so one that
		// degrades meanwhile fails instead of being promoted on approval.
		if err := p.runHooks(ctx, flaggerv1.RolloutHook); err != nil {
			return p.failCheck(ctx, t, err)
		}
		if err := p.checkMetrics(ctx); err != nil {
			return p.failCheck(ctx, t, err)
		}
		c.Status.LastTransitionTime = p.nowTime()
		return p.confirmPromotion(ctx, t, refs)
	}
	// Every step runs the rollout hooks (load tests, acceptance tests); the first runs the
	// pre-rollout hooks before them, and the metrics are judged from the second step on, once
	// the canary has had an interval of traffic to measure.
	var checkErr error
	if first {
		if c.Status.FailedChecks == 0 {
			p.event(corev1.EventTypeNormal, "Starting canary analysis for %s.%s", c.Spec.TargetRef.Name, c.Namespace)
		}
		checkErr = p.runHooks(ctx, flaggerv1.PreRolloutHook)
	}
	if checkErr == nil {
		checkErr = p.runHooks(ctx, flaggerv1.RolloutHook)
	}
	if checkErr == nil && !first {
		checkErr = p.checkMetrics(ctx)
	}
	if checkErr != nil {
		return p.failCheck(ctx, t, checkErr)
	}
	// Each step records its own time once its writes are done: a step that fails to write is
	// retried soon, not an interval later.
	return p.step(ctx, t, refs)
}

// failCheck counts a failed check and rolls back once the threshold is reached.
func (p *pass) failCheck(ctx context.Context, t *target, checkErr error) (ctrl.Result, error) {
	c := p.c
	c.Status.FailedChecks++
	c.Status.LastTransitionTime = p.nowTime()
	p.event(corev1.EventTypeWarning, "%v", checkErr)
	if c.Status.FailedChecks >= c.GetAnalysisThreshold() {
		return p.rollback(ctx, t, fmt.Sprintf("Rolling back %s.%s failed checks threshold reached %d: %v", c.Name, c.Namespace, c.Status.FailedChecks, checkErr))
	}
	// The status says why the run is not advancing, not only the events.
	p.setMessage(fmt.Sprintf("Failed check %d of %d: %v", c.Status.FailedChecks, c.GetAnalysisThreshold(), checkErr))
	return ctrl.Result{RequeueAfter: c.GetAnalysisInterval()}, nil
}

// confirmPromotion asks the confirm-promotion gates, then promotes.
func (p *pass) confirmPromotion(ctx context.Context, t *target, refs []revision.Ref) (ctrl.Result, error) {
	c := p.c
	// A blue/green run past its iterations was approved before traffic moved to the canary:
	// the gate is asked once per run.
	approved := p.shifts() && p.strategy() == flaggerv1.StrategyBlueGreen && c.Status.Iterations > p.iterations()
	if !approved {
		if ok, msg, halting := p.gate(ctx, flaggerv1.ConfirmPromotionHook, c.Status.LastAppliedSpec); !ok {
			if c.Status.Phase != flaggerv1.CanaryPhaseWaitingPromotion {
				p.awaitApproval(flaggerv1.CanaryPhaseWaitingPromotion, "Waiting for approval.", halting)
				p.event(corev1.EventTypeNormal, "Halt %s.%s advancement waiting for promotion approval %s", c.Name, c.Namespace, msg)
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
	return p.promote(ctx, t, refs)
}

// promote copies the target's template and configs (refs, tracked in this pass) to the primary.
func (p *pass) promote(ctx context.Context, t *target, refs []revision.Ref) (ctrl.Result, error) {
	c := p.c
	p.event(corev1.EventTypeNormal, "Copying %s.%s template spec to %s.%s", t.obj.GetName(), c.Namespace, workloads.PrimaryName(t.obj.GetName()), c.Namespace)
	if err := p.syncPrimaryConfigs(ctx, refs); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncPrimary(ctx, t, refs); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.syncHPA(ctx, t); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhasePromoting, "Canary analysis completed, starting primary rolling update.")
	return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
}

// promoting waits for the primary's rollout; the primary's watch events bring us back.
func (p *pass) promoting(ctx context.Context, t *target) (ctrl.Result, error) {
	c := p.c
	if rev, err := p.primaryRevision(ctx, t); err != nil || rev != c.Status.LastAppliedSpec {
		// The primary (or our cache of it) has not taken the promotion yet.
		return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, err
	}
	ready, reason, failed, err := p.primaryReady(ctx, t)
	if err != nil {
		return ctrl.Result{}, err
	}
	if failed {
		// The primary now runs the failed revision: whatever comes next, including the old
		// version, must be analysed and promoted again.
		c.Status.LastPromotedSpec = ""
		return p.failedPromotion(ctx, t, fmt.Sprintf("Promotion of %s.%s failed: primary %s", c.Name, c.Namespace, reason))
	}
	if !ready {
		return ctrl.Result{RequeueAfter: p.r.Options.PodPollInterval}, nil
	}
	done, res, err := p.promotionShift(ctx)
	if err != nil || !done {
		return res, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFinalising, "Canary analysis completed, routing all traffic to primary.")
	return p.finalising(ctx, t)
}

// finalising scales the target down and records the promotion.
func (p *pass) finalising(ctx context.Context, t *target) (ctrl.Result, error) {
	c := p.c
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.scaleToZero(ctx, t, c.Status.LastAppliedSpec); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.LastPromotedSpec = c.Status.LastAppliedSpec
	p.setPhase(flaggerv1.CanaryPhaseSucceeded, "Canary analysis completed successfully, promotion finished.")
	p.event(corev1.EventTypeNormal, "Promotion completed! Scaling down %s.%s", t.obj.GetName(), c.Namespace)
	status := metrics.AnalysisCompleted
	if c.SkipAnalysis() {
		status = metrics.AnalysisSkipped
	}
	p.afterStatus = append(p.afterStatus, func() {
		p.r.Metrics.IncSuccess(c.Spec.TargetRef.Name, c.Namespace, c.DeploymentStrategy(), status)
		p.postRollout(ctx)
	})
	return ctrl.Result{}, nil
}

// rollback scales the canary down and marks the run failed.
func (p *pass) rollback(ctx context.Context, t *target, why string) (ctrl.Result, error) {
	c := p.c
	p.event(corev1.EventTypeWarning, "%s", why)
	// Users leave the canary before its pods do.
	if err := p.route(ctx, 100, 0, false); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.scaleToZero(ctx, t, c.Status.LastAppliedSpec); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFailed, "Canary analysis failed, Deployment scaled to zero: "+why)
	p.event(corev1.EventTypeWarning, "Canary failed! Scaling down %s.%s", t.obj.GetName(), c.Namespace)
	p.afterStatus = append(p.afterStatus, func() {
		p.r.Metrics.IncFailure(c.Spec.TargetRef.Name, c.Namespace, c.DeploymentStrategy(), metrics.AnalysisCompleted)
		p.postRollout(ctx)
	})
	return ctrl.Result{}, nil
}

// failedPromotion ends a run whose primary could not roll out the promoted revision. Where
// traffic can move, it goes to the canary, which runs the same revision and is ready, and the
// canary keeps its pods; otherwise this is a rollback.
func (p *pass) failedPromotion(ctx context.Context, t *target, why string) (ctrl.Result, error) {
	c := p.c
	if !p.shifts() {
		return p.rollback(ctx, t, why)
	}
	p.event(corev1.EventTypeWarning, "%s", why)
	if err := p.route(ctx, 0, 100, false); err != nil {
		return ctrl.Result{}, err
	}
	p.setPhase(flaggerv1.CanaryPhaseFailed, "Promotion failed, all traffic routed to the canary: "+why)
	c.Status.CanaryWeight = 100
	p.event(corev1.EventTypeWarning, "Canary promotion failed! All traffic routed to %s.%s", t.obj.GetName(), c.Namespace)
	p.afterStatus = append(p.afterStatus, func() {
		p.r.Metrics.IncFailure(c.Spec.TargetRef.Name, c.Namespace, c.DeploymentStrategy(), metrics.AnalysisCompleted)
		p.postRollout(ctx)
	})
	return ctrl.Result{}, nil
}

// scaleToZero scales the target down and marks it idle at rev, which tells the workload
// webhook to keep it at zero through re-applies of the same manifest.
func (p *pass) scaleToZero(ctx context.Context, t *target, rev string) error {
	switch t.kind {
	case "Deployment":
		if t.replicas != nil && *t.replicas == 0 && t.obj.GetAnnotations()[meta.AnnotationIdle] == rev {
			return nil
		}
		return p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"replicas":0}}`, meta.AnnotationIdle, rev))
	case "DaemonSet":
		// A DaemonSet has no replicas: a node selector no node carries empties it. The key
		// is Herald's own, so the revision ignores it.
		if t.template.Spec.NodeSelector[scaleToZeroKey] == "true" && t.obj.GetAnnotations()[meta.AnnotationIdle] == rev {
			return nil
		}
		return p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"template":{"spec":{"nodeSelector":{%q:"true"}}}}}`, meta.AnnotationIdle, rev, scaleToZeroKey))
	}
	return nil
}

const scaleToZeroKey = "herald.dev/scale-to-zero"

// scaleUp starts the canary: the target gets the primary's size (or the user's wish) and is no
// longer idle.
func (p *pass) scaleUp(ctx context.Context, t *target, primary *appsv1.Deployment) error {
	switch t.kind {
	case "Deployment":
		n := desiredReplicas(t, primary)
		return p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"annotations":{%q:null,%q:null}},"spec":{"replicas":%d}}`, meta.AnnotationIdle, meta.AnnotationDesiredReplicas, *n))
	case "DaemonSet":
		return p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"annotations":{%q:null}},"spec":{"template":{"spec":{"nodeSelector":{%q:null}}}}}`, meta.AnnotationIdle, scaleToZeroKey))
	}
	return nil
}

// primaryRevision is the revision the primary's template was last promoted to.
func (p *pass) primaryRevision(ctx context.Context, t *target) (string, error) {
	var tmpl *corev1.PodTemplateSpec
	switch t.kind {
	case "Deployment":
		primary, err := p.getPrimary(ctx, t)
		if err != nil || primary == nil {
			return "", err
		}
		tmpl = &primary.Spec.Template
	case "DaemonSet":
		primary, err := p.getPrimaryDaemonSet(ctx, t)
		if err != nil || primary == nil {
			return "", err
		}
		tmpl = &primary.Spec.Template
	}
	return tmpl.Annotations[promotedAnnotation], nil
}

// primaryReady judges the primary's rollout.
func (p *pass) primaryReady(ctx context.Context, t *target) (ready bool, reason string, failed bool, err error) {
	c := p.c
	deadline := time.Duration(c.GetProgressDeadlineSeconds()) * time.Second
	switch t.kind {
	case "Deployment":
		primary, err := p.getPrimary(ctx, t)
		if err != nil || primary == nil {
			return false, "primary not created yet", false, err
		}
		ready, reason, failed := workloads.DeploymentReady(primary, c.GetAnalysisPrimaryReadyThreshold(), deadline, p.now)
		return ready, reason, failed, nil
	case "DaemonSet":
		primary, err := p.getPrimaryDaemonSet(ctx, t)
		if err != nil || primary == nil {
			return false, "primary not created yet", false, err
		}
		ready, reason, failed := workloads.DaemonSetReady(primary, c.GetAnalysisPrimaryReadyThreshold(), c.Status.LastTransitionTime.Time, deadline, p.now)
		return ready, reason, failed, nil
	}
	return false, "", false, nil
}

// canaryReady judges the target's rollout; pods that crash-loop or cannot pull their image
// fail the canary at once instead of waiting out the progress deadline.
func (p *pass) canaryReady(ctx context.Context, t *target) (ready bool, reason string, failed bool, err error) {
	c := p.c
	deadline := time.Duration(c.GetProgressDeadlineSeconds()) * time.Second
	switch d := t.obj.(type) {
	case *appsv1.Deployment:
		ready, reason, failed = workloads.DeploymentReady(d, c.GetAnalysisCanaryReadyThreshold(), deadline, p.now)
	case *appsv1.DaemonSet:
		ready, reason, failed = workloads.DaemonSetReady(d, c.GetAnalysisCanaryReadyThreshold(), c.Status.LastTransitionTime.Time, deadline, p.now)
	}
	if ready || failed {
		return ready, reason, failed, nil
	}
	pods, err := p.currentPods(ctx, t)
	if err != nil {
		return false, "", false, err
	}
	if why, failing := workloads.PodsFailing(pods); failing {
		return false, why, true, nil
	}
	return false, reason, false, nil
}

// currentPods lists the pods of the target's current revision only: pods of an earlier
// revision that are still terminating or crash-looping must not fail the fix that replaces it.
// For a Deployment that is the ReplicaSet whose deployment.kubernetes.io/revision matches the
// Deployment's; for a DaemonSet all its pods (the DaemonSet controller replaces them in place).
func (p *pass) currentPods(ctx context.Context, t *target) ([]corev1.Pod, error) {
	selector := client.MatchingLabels{t.label: t.value}
	var pods corev1.PodList
	if err := p.r.APIReader.List(ctx, &pods, client.InNamespace(p.c.Namespace), selector); err != nil {
		return nil, fmt.Errorf("listing canary pods: %w", err)
	}
	if t.kind != "Deployment" {
		return pods.Items, nil
	}
	const revisionKey = "deployment.kubernetes.io/revision"
	want := t.obj.GetAnnotations()[revisionKey]
	var sets appsv1.ReplicaSetList
	if err := p.r.APIReader.List(ctx, &sets, client.InNamespace(p.c.Namespace), selector); err != nil {
		return nil, fmt.Errorf("listing canary replica sets: %w", err)
	}
	hash := ""
	for _, rs := range sets.Items {
		if metav1.IsControlledBy(&rs, t.obj) && rs.Annotations[revisionKey] == want {
			hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	if hash == "" {
		return nil, nil // the Deployment controller has not made the new ReplicaSet yet
	}
	var current []corev1.Pod
	for _, pod := range pods.Items {
		if pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			current = append(current, pod)
		}
	}
	return current, nil
}

// gate runs the hooks of a gate type; it is open when every hook answers with success (or
// there is none). For rollback hooks "open" means: roll back, which one hook answering with
// success asks for. hook names the hook that decided (closed the gate, or asked to roll back).
func (p *pass) gate(ctx context.Context, t flaggerv1.HookType, rev string) (open bool, msg, hook string) {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return t != flaggerv1.RollbackHook, "", ""
	}
	for _, h := range hooks.Of(analysis.Webhooks, t) {
		err := p.r.Hooks.Call(ctx, h, p.hookPayload(h, rev))
		switch {
		case t == flaggerv1.RollbackHook && err == nil:
			return true, h.Name, h.Name
		case t != flaggerv1.RollbackHook && err != nil:
			return false, err.Error(), h.Name
		}
	}
	return t != flaggerv1.RollbackHook, "", ""
}

// runHooks calls every hook of type t; the first failure is the step's failure.
func (p *pass) runHooks(ctx context.Context, t flaggerv1.HookType) error {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return nil
	}
	for _, h := range hooks.Of(analysis.Webhooks, t) {
		if err := p.r.Hooks.Call(ctx, h, p.hookPayload(h, p.c.Status.LastAppliedSpec)); err != nil {
			return fmt.Errorf("Halt %s.%s advancement %s", p.c.Name, p.c.Namespace, err.Error())
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
	for _, r := range p.r.Checks.Check(ctx, p.c) {
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

func (p *pass) postRollout(ctx context.Context) {
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return
	}
	for _, h := range hooks.Of(analysis.Webhooks, flaggerv1.PostRolloutHook) {
		if err := p.r.Hooks.Call(ctx, h, p.hookPayload(h, p.c.Status.LastAppliedSpec)); err != nil {
			p.event(corev1.EventTypeWarning, "Post-rollout hook %s failed: %v", h.Name, err)
		}
	}
}

func (p *pass) payload(rev string) hooks.Payload {
	return hooks.Payload{Name: p.c.Name, Namespace: p.c.Namespace, Phase: p.c.Status.Phase, Checksum: rev}
}

// hookPayload is Flagger's payload for hook h: its metadata travels with it.
func (p *pass) hookPayload(h flaggerv1.CanaryWebhook, rev string) hooks.Payload {
	pl := p.payload(rev)
	pl.Metadata = h.Metadata
	return pl
}
