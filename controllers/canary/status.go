package canary

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/hooks"
	"github.com/herald-rollouts/herald/controllers/revision"
	"github.com/herald-rollouts/herald/controllers/workloads"
	"github.com/herald-rollouts/herald/webhooks/meta"
)

func (p *pass) nowTime() metav1.Time { return metav1.NewTime(p.now) }

// setPhase moves the Canary to phase and keeps the Promoted condition as Flagger does: True
// when Initialized or Succeeded, False when Failed, Unknown otherwise; its reason is the phase.
func (p *pass) setPhase(phase flaggerv1.CanaryPhase, message string) {
	p.queueAlert(phase, message) // before the change: it needs the phase being left
	s := &p.c.Status
	if s.Phase != phase {
		s.LastTransitionTime = p.nowTime()
	}
	s.Phase = phase
	switch phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded, flaggerv1.CanaryPhaseFailed:
		s.CanaryWeight = 0
	}
	status := corev1.ConditionUnknown
	switch phase {
	case flaggerv1.CanaryPhaseInitialized, flaggerv1.CanaryPhaseSucceeded:
		status = corev1.ConditionTrue
	case flaggerv1.CanaryPhaseFailed:
		status = corev1.ConditionFalse
	}
	now := p.nowTime()
	for i := range s.Conditions {
		cond := &s.Conditions[i]
		if cond.Type != flaggerv1.PromotedType {
			continue
		}
		if cond.Status != status {
			cond.LastTransitionTime = now
		}
		cond.Status, cond.Reason, cond.Message, cond.LastUpdateTime = status, string(phase), message, now
		return
	}
	s.Conditions = append(s.Conditions, flaggerv1.CanaryCondition{
		Type: flaggerv1.PromotedType, Status: status, Reason: string(phase), Message: message,
		LastUpdateTime: now, LastTransitionTime: now,
	})
}

// setMessage updates the Promoted condition's message without a phase change.
func (p *pass) setMessage(message string) {
	for i := range p.c.Status.Conditions {
		if cond := &p.c.Status.Conditions[i]; cond.Type == flaggerv1.PromotedType {
			cond.Message, cond.LastUpdateTime = message, p.nowTime()
		}
	}
}

// event records a Kubernetes event with Flagger's reason ("Synced") and message, logs it, and
// posts it to the Canary's event hooks.
func (p *pass) event(eventType, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if eventType == corev1.EventTypeWarning {
		p.log.Info(msg, "eventType", eventType)
	} else {
		p.log.Info(msg)
	}
	if p.deferEvents {
		// A step's events are published once its status is written: a pass whose status
		// write fails is run again, and must not announce its step twice.
		p.afterStatus = append(p.afterStatus, func() { p.publish(eventType, msg) })
		return
	}
	p.publish(eventType, msg)
}

// publish records the Kubernetes event and posts it to the Canary's event hooks.
func (p *pass) publish(eventType, msg string) {
	p.r.Events.Event(p.c, eventType, "Synced", msg)
	analysis := p.c.GetAnalysis()
	if analysis == nil {
		return
	}
	// Event hooks are notifications: they are posted in the background, so a slow or dead
	// endpoint never delays the analysis.
	for _, h := range hooks.Of(analysis.Webhooks, flaggerv1.EventHook) {
		pl := p.hookPayload(h, p.c.Status.LastAppliedSpec)
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

// eventOnce records a warning only when the Canary's phase would not already say so, so a
// missing target does not flood events on every watch event.
func (p *pass) eventOnce(eventType, format string, args ...any) {
	if p.c.Status.Phase == "" {
		p.event(eventType, format, args...)
	}
}

// observeDetection records how long after the target's last write Herald acted on it.
func (p *pass) observeDetection(t *target) {
	var latest metav1.Time
	for _, f := range t.obj.GetManagedFields() {
		if f.Time != nil && f.Time.After(latest.Time) {
			latest = *f.Time
		}
	}
	if !latest.IsZero() {
		p.r.Metrics.ObserveDetection(p.c.Namespace, p.now.Sub(latest.Time))
	}
}

// finalize runs when a Canary is deleted: with revertOnDeletion the target gets its replicas
// back; in every case Herald's labels and annotations leave the target and its configs, so
// nothing reaches Herald's webhooks any more. Owned objects are garbage-collected.
func (r *Reconciler) finalize(ctx context.Context, c *flaggerv1.Canary) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(c, Finalizer) {
		return ctrl.Result{}, nil
	}
	p := &pass{r: r, c: c, log: ctrl.LoggerFrom(ctx), now: r.Now()}
	t, err := p.getTarget(ctx)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		if _, terminal := err.(*terminalError); !terminal {
			return ctrl.Result{}, err
		}
	default:
		if err := p.release(ctx, t); err != nil {
			return ctrl.Result{}, err
		}
		// With revertOnDeletion the primary goes with the Canary: keep it (and the
		// finalizer) until the restored target serves, so the release costs no downtime.
		if d, ok := t.obj.(*appsv1.Deployment); ok && c.Spec.RevertOnDeletion {
			var fresh appsv1.Deployment
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), &fresh); err != nil {
				return ctrl.Result{}, err
			}
			deadline := time.Duration(c.GetProgressDeadlineSeconds()) * time.Second
			ready, _, failed := workloads.DeploymentReady(&fresh, 100, deadline, p.now)
			restored := fresh.Spec.Replicas == nil || *fresh.Spec.Replicas > 0
			if restored && !ready && !failed {
				return ctrl.Result{RequeueAfter: r.Options.PodPollInterval}, nil
			}
		}
	}
	r.Metrics.Forget(c.Spec.TargetRef.Name, c.Spec.TargetRef.Name, c.Namespace)
	patch := client.MergeFrom(c.DeepCopy())
	controllerutil.RemoveFinalizer(c, Finalizer)
	if err := r.Client.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// release gives the target back to its owner.
func (p *pass) release(ctx context.Context, t *target) error {
	annotations := fmt.Sprintf(`{%q:null,%q:null,%q:null}`, meta.AnnotationIdle, meta.AnnotationDesiredReplicas, meta.AnnotationRevision)
	labels := fmt.Sprintf(`{%q:null}`, meta.LabelCanary)
	spec := ""
	if p.c.Spec.RevertOnDeletion {
		switch t.kind {
		case "Deployment":
			primary, err := p.getPrimary(ctx, t)
			if err != nil {
				return err
			}
			n := desiredReplicas(t, primary)
			spec = fmt.Sprintf(`,"spec":{"replicas":%d}`, *n)
		case "DaemonSet":
			spec = fmt.Sprintf(`,"spec":{"template":{"spec":{"nodeSelector":{%q:null}}}}`, scaleToZeroKey)
		}
		p.event(corev1.EventTypeNormal, "Reverting %s.%s: restoring the target before the Canary is deleted", t.obj.GetName(), p.c.Namespace)
	}
	if err := p.mergePatch(ctx, t.obj, fmt.Sprintf(`{"metadata":{"labels":%s,"annotations":%s}%s}`, labels, annotations, spec)); err != nil {
		return err
	}
	for _, ref := range revision.Refs(&t.template.Spec) {
		var obj client.Object = &corev1.ConfigMap{}
		if ref.Kind == revision.Secret {
			obj = &corev1.Secret{}
		}
		obj.SetNamespace(p.c.Namespace)
		obj.SetName(ref.Name)
		err := p.mergePatch(ctx, obj, fmt.Sprintf(`{"metadata":{"labels":{%q:null},"annotations":{%q:null}}}`, meta.LabelTracked, meta.AnnotationChecksum))
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
