package workloads

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/internal/contract"
)

// Workload is a target or a primary of one of the kinds Herald releases (Deployment, DaemonSet,
// StatefulSet), seen through what the reconciler does with it. Each kind implements it once,
// so the reconciler never switches on the kind, and a new kind is one more implementation.
//
// The methods that change the workload (ScaleToZero, ScaleUp, Release, UpdatePrimary) change
// the object Object returns in place; callers work on a Copy and send the difference as a merge
// patch.
type Workload interface {
	// Object is the Kubernetes object.
	Object() client.Object
	// Copy is a Workload over a deep copy of the object.
	Copy() Workload
	// Kind is the object's kind ("Deployment", ...).
	Kind() string
	// Template is the pod template.
	Template() *corev1.PodTemplateSpec
	// Selector is the pod selector.
	Selector() *metav1.LabelSelector
	// Replicas is spec.replicas; nil for kinds without replicas (DaemonSet).
	Replicas() *int32

	// Idle reports whether the workload runs no pods because ScaleToZero(rev) emptied it.
	Idle(rev string) bool
	// ScaleToZero makes the workload run no pods and marks it idle at rev (AnnotationIdle),
	// which tells the workload webhook to keep it so through re-applies of the same manifest.
	ScaleToZero(rev string)
	// ScaleUp makes an idle workload run replicas pods (kinds without replicas: wherever they
	// would run) and removes the idle marks, Herald's and Flagger's.
	ScaleUp(replicas int32)
	// Release removes every mark Herald put on the target (labels, annotations, the node
	// selector of an idle DaemonSet when restore is set) so that nothing reaches Herald's
	// webhooks any more; with restore, an idle workload also gets replicas back.
	Release(restore bool, replicas int32)

	// Primary builds the desired primary copy of this target: existing is the live primary
	// (nil before it exists), label=value names the target's pods, renames maps tracked config
	// keys to their primary copies' names, and replicas is the primary's size for kinds with
	// replicas.
	// include decides which of the target's labels and annotations the primary gets.
	Primary(existing Workload, label, value string, renames map[string]string, replicas *int32, include LabelPrefixes) Workload
	// GoverningService is the name of the Service the workload's pods take their DNS names
	// from (a StatefulSet's spec.serviceName); "" for kinds that have none.
	GoverningService() string
	// UpdatePrimary makes this live primary take desired's labels, annotations and spec,
	// keeping the fields the API server does not let change and the annotations Kubernetes'
	// own controllers keep on it.
	UpdatePrimary(desired Workload)

	// Ready judges the rollout of the workload's current spec. thresholdPercent is the share
	// of pods that must be available; since is when the caller started waiting (for kinds
	// without a progress condition of their own), deadline the progress deadline.
	Ready(thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness
	// ReadyPods is how many of its pods are ready (what a Service sends traffic to), as its
	// controller last reported.
	ReadyPods() int32
	// CurrentPods lists the pods of the workload's current revision (pods of an older one,
	// still terminating or crash-looping, must not fail the revision that replaces them),
	// selecting them by label=value.
	CurrentPods(ctx context.Context, reader client.Reader, label, value string) ([]corev1.Pod, error)
}

// Kinds are the kinds of target Herald releases, in the order error messages list them.
var Kinds = []string{"Deployment", "DaemonSet", "StatefulSet"}

// New returns an empty object of kind, ready to be read into, and Wrap's Workload over it.
func New(kind string) (Workload, error) {
	switch kind {
	case "Deployment", "":
		return &deploymentWorkload{&appsv1.Deployment{}}, nil
	case "DaemonSet":
		return &daemonSetWorkload{&appsv1.DaemonSet{}}, nil
	case "StatefulSet":
		return &statefulSetWorkload{&appsv1.StatefulSet{}}, nil
	}
	return nil, fmt.Errorf("kind %q is not supported: use one of %s", kind, strings.Join(Kinds, ", "))
}

// Wrap returns the Workload over obj, or nil when obj is of no supported kind.
func Wrap(obj client.Object) Workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &deploymentWorkload{o}
	case *appsv1.DaemonSet:
		return &daemonSetWorkload{o}
	case *appsv1.StatefulSet:
		return &statefulSetWorkload{o}
	}
	return nil
}

// setIdle marks meta idle at rev.
func setIdle(meta *metav1.ObjectMeta, rev string) {
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[contract.AnnotationIdle] = rev
}

// wake removes the idle marks of a workload with replicas: the mark and the replicas wish
// recorded while it was idle (the target now runs, sized by the wish).
func wake(meta *metav1.ObjectMeta) {
	delete(meta.Annotations, contract.AnnotationIdle)
	delete(meta.Annotations, contract.AnnotationDesiredReplicas)
}

// release removes Herald's label and annotations from a target's metadata.
func release(meta *metav1.ObjectMeta) {
	delete(meta.Labels, contract.LabelCanary)
	for _, k := range []string{contract.AnnotationIdle, contract.AnnotationDesiredReplicas, contract.AnnotationRevision} {
		delete(meta.Annotations, k)
	}
}

// updateMeta gives a live primary desired's labels and annotations, keeping the annotations
// Kubernetes' own controllers keep on a workload (deployment.kubernetes.io/revision,
// deprecated.daemonset.template.generation). Dropping them would make those controllers write
// them back, and since annotation changes bump a Deployment's generation, the two would chase
// each other forever.
func updateMeta(actual, desired *metav1.ObjectMeta) {
	out := maps.Clone(desired.Annotations)
	for k, v := range actual.Annotations {
		if strings.HasPrefix(k, "deployment.kubernetes.io/") || k == "deprecated.daemonset.template.generation" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	actual.Labels, actual.Annotations = maps.Clone(desired.Labels), out
}

// listPods lists the pods of namespace labelled label=value.
func listPods(ctx context.Context, reader client.Reader, namespace, label, value string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{label: value}); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	return pods.Items, nil
}

// podsLabelled keeps the pods whose label key has value.
func podsLabelled(pods []corev1.Pod, key, value string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Labels[key] == value {
			out = append(out, p)
		}
	}
	return out
}

type deploymentWorkload struct{ *appsv1.Deployment }

func (d *deploymentWorkload) Object() client.Object             { return d.Deployment }
func (d *deploymentWorkload) Copy() Workload                    { return &deploymentWorkload{d.DeepCopy()} }
func (d *deploymentWorkload) Kind() string                      { return "Deployment" }
func (d *deploymentWorkload) Template() *corev1.PodTemplateSpec { return &d.Spec.Template }
func (d *deploymentWorkload) Selector() *metav1.LabelSelector   { return d.Spec.Selector }
func (d *deploymentWorkload) Replicas() *int32                  { return d.Spec.Replicas }
func (d *deploymentWorkload) Idle(rev string) bool {
	return idleReplicas(&d.ObjectMeta, d.Spec.Replicas, rev)
}
func (d *deploymentWorkload) ScaleToZero(rev string) {
	d.Spec.Replicas = new(int32)
	setIdle(&d.ObjectMeta, rev)
}
func (d *deploymentWorkload) ScaleUp(replicas int32) {
	d.Spec.Replicas = &replicas
	wake(&d.ObjectMeta)
}

func (d *deploymentWorkload) Release(restore bool, replicas int32) {
	release(&d.ObjectMeta)
	if restore {
		d.Spec.Replicas = &replicas
	}
}

func (d *deploymentWorkload) Primary(existing Workload, label, value string, renames map[string]string, replicas *int32, include LabelPrefixes) Workload {
	var live *appsv1.Deployment
	if existing != nil {
		live = existing.(*deploymentWorkload).Deployment
	}
	return &deploymentWorkload{PrimaryDeployment(d.Deployment, live, label, value, renames, replicas, include)}
}

func (d *deploymentWorkload) GoverningService() string { return "" }

func (d *deploymentWorkload) UpdatePrimary(desired Workload) {
	want := desired.(*deploymentWorkload)
	updateMeta(&d.ObjectMeta, &want.ObjectMeta)
	selector := d.Spec.Selector
	want.Spec.DeepCopyInto(&d.Spec)
	if selector != nil { // immutable once created
		d.Spec.Selector = selector
	}
}

func (d *deploymentWorkload) ReadyPods() int32 { return d.Status.ReadyReplicas }

func (d *deploymentWorkload) Ready(thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	return DeploymentReady(d.Deployment, thresholdPercent, since, deadline, now)
}

// CurrentPods: the pods of the ReplicaSet whose deployment.kubernetes.io/revision is the
// Deployment's; none until the Deployment controller has made it.
func (d *deploymentWorkload) CurrentPods(ctx context.Context, reader client.Reader, label, value string) ([]corev1.Pod, error) {
	const revisionKey = "deployment.kubernetes.io/revision"
	var sets appsv1.ReplicaSetList
	if err := reader.List(ctx, &sets, client.InNamespace(d.Namespace), client.MatchingLabels{label: value}); err != nil {
		return nil, fmt.Errorf("listing replica sets: %w", err)
	}
	hash := ""
	for _, rs := range sets.Items {
		if metav1.IsControlledBy(&rs, d.Deployment) && rs.Annotations[revisionKey] == d.Annotations[revisionKey] {
			hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	if hash == "" {
		return nil, nil
	}
	pods, err := listPods(ctx, reader, d.Namespace, label, value)
	return podsLabelled(pods, appsv1.DefaultDeploymentUniqueLabelKey, hash), err
}

// idleReplicas: a workload with replicas is idle at rev when it has none and carries the mark.
func idleReplicas(meta *metav1.ObjectMeta, replicas *int32, rev string) bool {
	return replicas != nil && *replicas == 0 && meta.Annotations[contract.AnnotationIdle] == rev
}

type daemonSetWorkload struct{ *appsv1.DaemonSet }

func (d *daemonSetWorkload) Object() client.Object             { return d.DaemonSet }
func (d *daemonSetWorkload) Copy() Workload                    { return &daemonSetWorkload{d.DeepCopy()} }
func (d *daemonSetWorkload) Kind() string                      { return "DaemonSet" }
func (d *daemonSetWorkload) Template() *corev1.PodTemplateSpec { return &d.Spec.Template }
func (d *daemonSetWorkload) Selector() *metav1.LabelSelector   { return d.Spec.Selector }
func (d *daemonSetWorkload) Replicas() *int32                  { return nil }

// A DaemonSet has no replicas: a node selector no node carries empties it. The key is
// Herald's own, or Flagger's on a DaemonSet that Flagger left idle; the revision ignores both.
func (d *daemonSetWorkload) Idle(rev string) bool {
	return d.emptied() && d.Annotations[contract.AnnotationIdle] == rev
}

// emptied reports whether the pod template carries Herald's or Flagger's scale-to-zero key.
func (d *daemonSetWorkload) emptied() bool {
	ns := d.Spec.Template.Spec.NodeSelector
	return ns[contract.NodeSelectorScaleToZero] == "true" || ns[contract.FlaggerNodeSelectorScaleToZero] == "true"
}

// ScaleToZero adds Herald's key, unless Flagger's already empties the DaemonSet: taking over
// one that Flagger idled then changes its metadata only.
func (d *daemonSetWorkload) ScaleToZero(rev string) {
	if !d.emptied() {
		ns := d.Spec.Template.Spec.NodeSelector
		if ns == nil {
			ns = map[string]string{}
			d.Spec.Template.Spec.NodeSelector = ns
		}
		ns[contract.NodeSelectorScaleToZero] = "true"
	}
	setIdle(&d.ObjectMeta, rev)
}

// ScaleUp also removes Flagger's scale-to-zero key, so a DaemonSet Flagger left idle runs again.
func (d *daemonSetWorkload) ScaleUp(int32) {
	d.unblock()
	wake(&d.ObjectMeta)
}

func (d *daemonSetWorkload) unblock() {
	delete(d.Spec.Template.Spec.NodeSelector, contract.NodeSelectorScaleToZero)
	delete(d.Spec.Template.Spec.NodeSelector, contract.FlaggerNodeSelectorScaleToZero)
}

func (d *daemonSetWorkload) Release(restore bool, _ int32) {
	release(&d.ObjectMeta)
	if restore {
		d.unblock()
	}
}

func (d *daemonSetWorkload) Primary(existing Workload, label, value string, renames map[string]string, _ *int32, include LabelPrefixes) Workload {
	var live *appsv1.DaemonSet
	if existing != nil {
		live = existing.(*daemonSetWorkload).DaemonSet
	}
	return &daemonSetWorkload{PrimaryDaemonSet(d.DaemonSet, live, label, value, renames, include)}
}

func (d *daemonSetWorkload) GoverningService() string { return "" }

func (d *daemonSetWorkload) UpdatePrimary(desired Workload) {
	want := desired.(*daemonSetWorkload)
	updateMeta(&d.ObjectMeta, &want.ObjectMeta)
	selector := d.Spec.Selector
	want.Spec.DeepCopyInto(&d.Spec)
	if selector != nil {
		d.Spec.Selector = selector
	}
}

func (d *daemonSetWorkload) ReadyPods() int32 { return d.Status.NumberReady }

func (d *daemonSetWorkload) Ready(thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	return DaemonSetReady(d.DaemonSet, thresholdPercent, since, deadline, now)
}

// CurrentPods: all its pods; the DaemonSet controller replaces them node by node.
func (d *daemonSetWorkload) CurrentPods(ctx context.Context, reader client.Reader, label, value string) ([]corev1.Pod, error) {
	return listPods(ctx, reader, d.Namespace, label, value)
}

type statefulSetWorkload struct{ *appsv1.StatefulSet }

func (s *statefulSetWorkload) Object() client.Object             { return s.StatefulSet }
func (s *statefulSetWorkload) Copy() Workload                    { return &statefulSetWorkload{s.DeepCopy()} }
func (s *statefulSetWorkload) Kind() string                      { return "StatefulSet" }
func (s *statefulSetWorkload) Template() *corev1.PodTemplateSpec { return &s.Spec.Template }
func (s *statefulSetWorkload) Selector() *metav1.LabelSelector   { return s.Spec.Selector }
func (s *statefulSetWorkload) Replicas() *int32                  { return s.Spec.Replicas }
func (s *statefulSetWorkload) Idle(rev string) bool {
	return idleReplicas(&s.ObjectMeta, s.Spec.Replicas, rev)
}
func (s *statefulSetWorkload) ScaleToZero(rev string) {
	s.Spec.Replicas = new(int32)
	setIdle(&s.ObjectMeta, rev)
}

func (s *statefulSetWorkload) ScaleUp(replicas int32) {
	s.Spec.Replicas = &replicas
	wake(&s.ObjectMeta)
}

func (s *statefulSetWorkload) Release(restore bool, replicas int32) {
	release(&s.ObjectMeta)
	if restore {
		s.Spec.Replicas = &replicas
	}
}

func (s *statefulSetWorkload) Primary(existing Workload, label, value string, renames map[string]string, replicas *int32, include LabelPrefixes) Workload {
	var live *appsv1.StatefulSet
	if existing != nil {
		live = existing.(*statefulSetWorkload).StatefulSet
	}
	return &statefulSetWorkload{PrimaryStatefulSet(s.StatefulSet, live, label, value, renames, replicas, include)}
}

func (s *statefulSetWorkload) GoverningService() string { return s.Spec.ServiceName }

// UpdatePrimary keeps what a StatefulSet cannot change once created: its selector, governing
// Service, volume claim templates and pod management policy.
func (s *statefulSetWorkload) UpdatePrimary(desired Workload) {
	want := desired.(*statefulSetWorkload)
	updateMeta(&s.ObjectMeta, &want.ObjectMeta)
	if s.ResourceVersion == "" { // not created yet
		want.Spec.DeepCopyInto(&s.Spec)
		return
	}
	keep := s.Spec
	want.Spec.DeepCopyInto(&s.Spec)
	s.Spec.Selector, s.Spec.ServiceName = keep.Selector, keep.ServiceName
	s.Spec.VolumeClaimTemplates, s.Spec.PodManagementPolicy = keep.VolumeClaimTemplates, keep.PodManagementPolicy
}

func (s *statefulSetWorkload) ReadyPods() int32 { return s.Status.ReadyReplicas }

func (s *statefulSetWorkload) Ready(thresholdPercent int, since time.Time, deadline time.Duration, now time.Time) Readiness {
	return StatefulSetReady(s.StatefulSet, thresholdPercent, since, deadline, now)
}

// CurrentPods: the pods of its update revision.
func (s *statefulSetWorkload) CurrentPods(ctx context.Context, reader client.Reader, label, value string) ([]corev1.Pod, error) {
	if s.Status.UpdateRevision == "" {
		return nil, nil
	}
	pods, err := listPods(ctx, reader, s.Namespace, label, value)
	return podsLabelled(pods, appsv1.ControllerRevisionHashLabelKey, s.Status.UpdateRevision), err
}

// progress is what Ready, ReadyPods and CurrentPods read of a workload's status: two
// workloads with the same progress get the same verdict (time aside), so a status update that
// leaves it unchanged cannot change a decision.
type progress struct {
	observed                     int64
	replicas, updated, available int32
	serving                      bool // some pod is ready: a Service sends traffic to it
	revision                     string
	conditions                   string
}

func conditionsKey[T any](conds []T, key func(T) string) string {
	var b strings.Builder
	for _, c := range conds {
		b.WriteString(key(c))
		b.WriteByte(';')
	}
	return b.String()
}

// ProgressChanged reports whether a status update from old to new can change what Herald
// decides about the workload: a generation, label, annotation, owner or deletion change, or a
// change of what its readiness is judged on. Counts a judgement does not read (unavailable,
// terminating, ready beyond the first pod) and condition messages and times do not count;
// deadlines are found by the waiting pass's own timer.
func ProgressChanged(old, new client.Object) bool {
	if old == nil || new == nil {
		return true
	}
	if MetadataChanged(old, new) {
		return true
	}
	o, ok1 := progressOf(old)
	n, ok2 := progressOf(new)
	return !ok1 || !ok2 || o != n
}

// MetadataChanged reports whether an update from old to new changed more than the status: the
// generation (the spec), labels, annotations, owners, finalizers or deletion.
func MetadataChanged(old, new client.Object) bool {
	return old.GetGeneration() != new.GetGeneration() ||
		!maps.Equal(old.GetLabels(), new.GetLabels()) ||
		!maps.Equal(old.GetAnnotations(), new.GetAnnotations()) ||
		!old.GetDeletionTimestamp().Equal(new.GetDeletionTimestamp()) ||
		!slices.Equal(old.GetFinalizers(), new.GetFinalizers()) ||
		!slices.EqualFunc(old.GetOwnerReferences(), new.GetOwnerReferences(), func(a, b metav1.OwnerReference) bool { return a.UID == b.UID })
}

func progressOf(obj client.Object) (progress, bool) {
	w, ok := Wrap(obj).(interface{ progress() progress })
	if !ok {
		return progress{}, false
	}
	return w.progress(), true
}

func (d *deploymentWorkload) progress() progress {
	st := &d.Status
	return progress{
		observed: st.ObservedGeneration, replicas: st.Replicas, updated: st.UpdatedReplicas,
		available: st.AvailableReplicas, serving: st.ReadyReplicas > 0,
		conditions: conditionsKey(st.Conditions, func(c appsv1.DeploymentCondition) string {
			return string(c.Type) + "=" + string(c.Status) + "/" + c.Reason
		}),
	}
}

func (d *daemonSetWorkload) progress() progress {
	st := &d.Status
	return progress{
		observed: st.ObservedGeneration, replicas: st.DesiredNumberScheduled, updated: st.UpdatedNumberScheduled,
		available: st.NumberAvailable, serving: st.NumberReady > 0,
	}
}

func (s *statefulSetWorkload) progress() progress {
	st := &s.Status
	return progress{
		observed: st.ObservedGeneration, replicas: st.Replicas, updated: st.UpdatedReplicas,
		available: st.AvailableReplicas, serving: st.ReadyReplicas > 0, revision: st.UpdateRevision,
	}
}
