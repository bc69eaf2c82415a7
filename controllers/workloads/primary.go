package workloads

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

const (
	// lastAppliedAnnotation is kubectl's client-side apply record; it describes the target, not
	// the primary.
	lastAppliedAnnotation = corev1.LastAppliedConfigAnnotation
	// deploymentRevisionAnnotation is written by the Deployment controller on each Deployment;
	// copying the target's would fight the primary's own.
	deploymentRevisionAnnotation = "deployment.kubernetes.io/revision"
	// FlaggerScaleToZeroNodeSelector is the nodeSelector key Flagger used to scale a DaemonSet to
	// zero. It is never copied to a primary DaemonSet.
	FlaggerScaleToZeroNodeSelector = "flagger.app/scale-to-zero"
)

// LabelPrefixes is Flagger's -include-label-prefix rule: which of a target's labels and
// annotations are copied onto its primary and onto the primary copies of its configs and
// autoscaler. A key is copied when it starts with one of the prefixes, or when a prefix is "*";
// an empty prefix matches nothing, so the default (no flag) copies none. Keys of Flux
// (*toolkit.fluxcd.io*) are never copied, as in Flagger, and neither are Herald's own, kubectl's
// last-applied-configuration nor the Deployment controller's revision annotation.
type LabelPrefixes []string

// Keeps reports whether key is copied.
func (lp LabelPrefixes) Keeps(key string) bool {
	if isFlux(key) || isHerald(key) {
		return false
	}
	for _, p := range lp {
		if p == "*" || (p != "" && strings.HasPrefix(key, p)) {
			return true
		}
	}
	return false
}

// filterPrefixed copies m's keys that lp keeps and drop does not reject.
func (lp LabelPrefixes) filter(m map[string]string, drop func(string) bool) map[string]string {
	return filter(m, func(k string) bool { return !lp.Keeps(k) || drop(k) })
}

// dropAnnotation is true for the target annotations never copied to a generated object,
// whatever the prefixes: they describe the target itself.
func dropAnnotation(k string) bool {
	return k == lastAppliedAnnotation || k == deploymentRevisionAnnotation
}

// primaryMeta is the metadata of the primary copy of obj: its name with "-primary", its
// namespace, and the labels and annotations include keeps. When label is set, the labels get
// label=value+"-primary".
func primaryMeta(obj *metav1.ObjectMeta, label, value string, include LabelPrefixes) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name:        contract.PrimaryName(obj.Name),
		Namespace:   obj.Namespace,
		Labels:      include.filter(obj.Labels, func(string) bool { return false }),
		Annotations: include.filter(obj.Annotations, dropAnnotation),
	}
	if label != "" {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[label] = value + contract.PrimarySuffix
	}
	return m
}

// primarySelector is the selector of a primary workload: the one of existing when the primary
// exists (a workload's selector is immutable), else {label: value+"-primary"} alone.
func primarySelector(existing *metav1.LabelSelector, label, value string) *metav1.LabelSelector {
	if existing != nil {
		return existing.DeepCopy()
	}
	return &metav1.LabelSelector{MatchLabels: map[string]string{label: value + contract.PrimarySuffix}}
}

// PrimaryDeployment builds the desired <target>-primary Deployment.
//
//   - Labels and annotations: the target's that include keeps (see LabelPrefixes), plus the
//     label label=value+"-primary".
//   - spec.selector: {label: value+"-primary"} only; when existing (the live primary, nil before
//     it is created) has a selector, that one is kept, because it is immutable.
//   - minReadySeconds, revisionHistoryLimit, strategy and progressDeadlineSeconds are copied;
//     replicas is the replicas argument (the reconciler decides it).
//   - spec.template: PrimaryPodTemplate(target's template, label, value, renames).
func PrimaryDeployment(target *appsv1.Deployment, existing *appsv1.Deployment, label, value string, renames map[string]string, replicas *int32, include LabelPrefixes) *appsv1.Deployment {
	var existingSelector *metav1.LabelSelector
	if existing != nil {
		existingSelector = existing.Spec.Selector
	}
	ts := &target.Spec
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: primaryMeta(&target.ObjectMeta, label, value, include),
		Spec: appsv1.DeploymentSpec{
			Replicas:                copyInt32(replicas),
			Selector:                primarySelector(existingSelector, label, value),
			Template:                PrimaryPodTemplate(&ts.Template, label, value, renames),
			MinReadySeconds:         ts.MinReadySeconds,
			RevisionHistoryLimit:    copyInt32(ts.RevisionHistoryLimit),
			ProgressDeadlineSeconds: copyInt32(ts.ProgressDeadlineSeconds),
		},
	}
	ts.Strategy.DeepCopyInto(&d.Spec.Strategy)
	return d
}

// PrimaryDaemonSet builds the desired <target>-primary DaemonSet, as PrimaryDeployment does
// (there are no replicas): minReadySeconds, revisionHistoryLimit and updateStrategy are copied.
// The pod template's nodeSelector loses the keys used to scale a DaemonSet to zero
// (flagger.app/scale-to-zero and herald.dev/*), so the primary runs where the target would.
func PrimaryDaemonSet(target *appsv1.DaemonSet, existing *appsv1.DaemonSet, label, value string, renames map[string]string, include LabelPrefixes) *appsv1.DaemonSet {
	var existingSelector *metav1.LabelSelector
	if existing != nil {
		existingSelector = existing.Spec.Selector
	}
	ts := &target.Spec
	d := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "DaemonSet"},
		ObjectMeta: primaryMeta(&target.ObjectMeta, label, value, include),
		Spec: appsv1.DaemonSetSpec{
			Selector:             primarySelector(existingSelector, label, value),
			Template:             PrimaryPodTemplate(&ts.Template, label, value, renames),
			MinReadySeconds:      ts.MinReadySeconds,
			RevisionHistoryLimit: copyInt32(ts.RevisionHistoryLimit),
		},
	}
	ts.UpdateStrategy.DeepCopyInto(&d.Spec.UpdateStrategy)
	d.Spec.Template.Spec.NodeSelector = filter(d.Spec.Template.Spec.NodeSelector, func(k string) bool {
		return k == FlaggerScaleToZeroNodeSelector || isHerald(k)
	})
	return d
}

// PrimaryStatefulSet builds the desired <target>-primary StatefulSet, as PrimaryDeployment does.
// Its governing Service is GoverningServiceName(target): a headless Service the reconciler
// creates beside it, since a StatefulSet's pods get their DNS names from it. Its volume claim
// templates are the target's, so its pods get claims of their own
// (<claim>-<target>-primary-<ordinal>): the primary never shares the target's volumes. Its
// update strategy is always RollingUpdate without a partition, or a promotion would never
// reach every pod. persistentVolumeClaimRetentionPolicy, ordinals, minReadySeconds,
// revisionHistoryLimit and podManagementPolicy are copied.
func PrimaryStatefulSet(target *appsv1.StatefulSet, existing *appsv1.StatefulSet, label, value string, renames map[string]string, replicas *int32, include LabelPrefixes) *appsv1.StatefulSet {
	var existingSelector *metav1.LabelSelector
	if existing != nil {
		existingSelector = existing.Spec.Selector
	}
	ts := &target.Spec
	s := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "StatefulSet"},
		ObjectMeta: primaryMeta(&target.ObjectMeta, label, value, include),
		Spec: appsv1.StatefulSetSpec{
			Replicas:             copyInt32(replicas),
			Selector:             primarySelector(existingSelector, label, value),
			Template:             PrimaryPodTemplate(&ts.Template, label, value, renames),
			ServiceName:          GoverningServiceName(target),
			PodManagementPolicy:  ts.PodManagementPolicy,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			RevisionHistoryLimit: copyInt32(ts.RevisionHistoryLimit),
			MinReadySeconds:      ts.MinReadySeconds,
		},
	}
	if ru := ts.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		mu := *ru.MaxUnavailable
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: &mu}
	}
	for _, claim := range ts.VolumeClaimTemplates {
		c := claim.DeepCopy()
		c.Status = corev1.PersistentVolumeClaimStatus{}
		s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, *c)
	}
	if p := ts.PersistentVolumeClaimRetentionPolicy; p != nil {
		s.Spec.PersistentVolumeClaimRetentionPolicy = p.DeepCopy()
	}
	if o := ts.Ordinals; o != nil {
		s.Spec.Ordinals = o.DeepCopy()
	}
	return s
}

// GoverningServiceName is the name of the primary StatefulSet's governing headless Service:
// the target's, suffixed with -primary ("" when the target has none).
func GoverningServiceName(target *appsv1.StatefulSet) string {
	if target.Spec.ServiceName == "" {
		return ""
	}
	return contract.PrimaryName(target.Spec.ServiceName)
}

// CheckGoverningService refuses a target whose governing Service (StatefulSets) would clash
// with the Canary's own Services: Herald manages the apex, -primary and -canary Services, and
// the primary's governing Service is <governing>-primary.
func CheckGoverningService(target Workload, c *flaggerv1.Canary) error {
	governing := target.GoverningService()
	if governing == "" {
		return nil
	}
	apex, primary, canary := c.GetServiceNames()
	clash := false
	for _, name := range []string{governing, contract.PrimaryName(governing)} {
		clash = clash || name == apex || name == primary || name == canary
	}
	if !clash {
		return nil
	}
	return fmt.Errorf("target %s %s/%s: its governing Service %q clashes with the Canary's Services %q, %q and %q; give the %s's spec.serviceName another name, or set the Canary's spec.service.name",
		target.Kind(), c.Namespace, target.Object().GetName(), governing, apex, primary, canary, target.Kind())
}

// PrimaryGoverningService builds the headless Service a primary StatefulSet takes its pods' DNS
// names from: named <governing>-primary in namespace, selecting the primary's pods
// (label=value+"-primary"), with the ports and publishNotReadyAddresses of the target's
// governing Service when it exists (targetSvc may be nil).
func PrimaryGoverningService(governing, namespace string, targetSvc *corev1.Service, label, value string) *corev1.Service {
	s := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: contract.PrimaryName(governing), Namespace: namespace,
			Labels: map[string]string{label: contract.PrimaryName(value)}},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{label: contract.PrimaryName(value)},
		},
	}
	if targetSvc != nil {
		s.Spec.Ports = clonePorts(targetSvc.Spec.Ports)
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
		s.Spec.PublishNotReadyAddresses = targetSvc.Spec.PublishNotReadyAddresses
	}
	return s
}

// PrimaryConfigMap returns the primary copy of a tracked ConfigMap: named <name>-primary in the
// same namespace, with data, binaryData and immutable copied, and the labels and annotations
// include keeps (never herald.dev/*: in particular not herald.dev/tracked, so the copy is not
// tracked itself).
func PrimaryConfigMap(cm *corev1.ConfigMap, include LabelPrefixes) *corev1.ConfigMap {
	out := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        contract.PrimaryName(cm.Name),
			Namespace:   cm.Namespace,
			Labels:      include.filter(cm.Labels, func(string) bool { return false }),
			Annotations: include.filter(cm.Annotations, dropAnnotation),
		},
		Immutable: copyBool(cm.Immutable),
	}
	if cm.Data != nil {
		out.Data = make(map[string]string, len(cm.Data))
		for k, v := range cm.Data {
			out.Data[k] = v
		}
	}
	if cm.BinaryData != nil {
		out.BinaryData = make(map[string][]byte, len(cm.BinaryData))
		for k, v := range cm.BinaryData {
			out.BinaryData[k] = append([]byte(nil), v...)
		}
	}
	return out
}

// PrimarySecret returns the primary copy of a tracked Secret, as PrimaryConfigMap does; the
// type is kept.
func PrimarySecret(s *corev1.Secret, include LabelPrefixes) *corev1.Secret {
	out := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        contract.PrimaryName(s.Name),
			Namespace:   s.Namespace,
			Labels:      include.filter(s.Labels, func(string) bool { return false }),
			Annotations: include.filter(s.Annotations, dropAnnotation),
		},
		Immutable: copyBool(s.Immutable),
		Type:      s.Type,
	}
	if s.Data != nil {
		out.Data = make(map[string][]byte, len(s.Data))
		for k, v := range s.Data {
			out.Data[k] = append([]byte(nil), v...)
		}
	}
	// StringData is write-only; the API server merges it into Data, so a live Secret never has it.
	for k, v := range s.StringData {
		if out.Data == nil {
			out.Data = map[string][]byte{}
		}
		out.Data[k] = []byte(v)
	}
	return out
}

// PrimaryHPA returns the primary copy of the target's HorizontalPodAutoscaler: named
// <hpa>-primary, labels and annotations that include keeps, the same spec
// (metrics, behavior, bounds) but scaleTargetRef naming primaryWorkload, and minReplicas /
// maxReplicas replaced by overrides (canary.spec.autoscalerRef.primaryScalerReplicas) where set.
func PrimaryHPA(hpa *autoscalingv2.HorizontalPodAutoscaler, primaryWorkload string, overrides *flaggerv1.ScalerReplicas, include LabelPrefixes) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: autoscalingv2.SchemeGroupVersion.String(), Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: primaryMeta(&hpa.ObjectMeta, "", "", include),
	}
	hpa.Spec.DeepCopyInto(&out.Spec)
	out.Spec.ScaleTargetRef.Name = primaryWorkload
	if overrides != nil {
		if overrides.MinReplicas != nil {
			out.Spec.MinReplicas = copyInt32(overrides.MinReplicas)
		}
		if overrides.MaxReplicas != nil {
			out.Spec.MaxReplicas = *overrides.MaxReplicas
		}
	}
	return out
}

func copyInt32(p *int32) *int32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func copyBool(p *bool) *bool {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
