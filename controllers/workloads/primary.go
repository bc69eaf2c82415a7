package workloads

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
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

// dropLabel is true for the target labels not copied to a generated object: Herald's own and
// Flux's ownership labels (Flux would otherwise garbage-collect or re-apply the copy).
func dropLabel(k string) bool { return isHerald(k) || isFlux(k) }

// dropAnnotation is true for the target annotations not copied to a generated object.
func dropAnnotation(k string) bool {
	return isHerald(k) || isFlux(k) || k == lastAppliedAnnotation || k == deploymentRevisionAnnotation
}

// primaryMeta is the metadata of the primary copy of obj: its name with "-primary", its
// namespace, and its labels and annotations without the ones dropLabel and dropAnnotation
// reject. When label is set, the labels get label=value+"-primary".
func primaryMeta(obj *metav1.ObjectMeta, label, value string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name:        PrimaryName(obj.Name),
		Namespace:   obj.Namespace,
		Labels:      filter(obj.Labels, dropLabel),
		Annotations: filter(obj.Annotations, dropAnnotation),
	}
	if label != "" {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[label] = value + PrimarySuffix
	}
	return m
}

// primarySelector is the selector of a primary workload: the one of existing when the primary
// exists (a workload's selector is immutable), else {label: value+"-primary"} alone.
func primarySelector(existing *metav1.LabelSelector, label, value string) *metav1.LabelSelector {
	if existing != nil {
		return existing.DeepCopy()
	}
	return &metav1.LabelSelector{MatchLabels: map[string]string{label: value + PrimarySuffix}}
}

// PrimaryDeployment builds the desired <target>-primary Deployment.
//
//   - Labels: the target's, without herald.dev/* and Flux's *.toolkit.fluxcd.io keys, plus
//     label=value+"-primary". Annotations: the target's, without herald.dev/*, Flux's keys,
//     kubectl's last-applied-configuration and the Deployment controller's revision.
//   - spec.selector: {label: value+"-primary"} only; when existing (the live primary, nil before
//     it is created) has a selector, that one is kept, because it is immutable.
//   - minReadySeconds, revisionHistoryLimit, strategy and progressDeadlineSeconds are copied;
//     replicas is the replicas argument (the reconciler decides it).
//   - spec.template: PrimaryPodTemplate(target's template, label, value, renames).
func PrimaryDeployment(target *appsv1.Deployment, existing *appsv1.Deployment, label, value string, renames map[string]string, replicas *int32) *appsv1.Deployment {
	var existingSelector *metav1.LabelSelector
	if existing != nil {
		existingSelector = existing.Spec.Selector
	}
	ts := &target.Spec
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: primaryMeta(&target.ObjectMeta, label, value),
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
func PrimaryDaemonSet(target *appsv1.DaemonSet, existing *appsv1.DaemonSet, label, value string, renames map[string]string) *appsv1.DaemonSet {
	var existingSelector *metav1.LabelSelector
	if existing != nil {
		existingSelector = existing.Spec.Selector
	}
	ts := &target.Spec
	d := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "DaemonSet"},
		ObjectMeta: primaryMeta(&target.ObjectMeta, label, value),
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

// dropConfigAnnotation is true for the config annotations not copied to a primary config.
func dropConfigAnnotation(k string) bool {
	return isHerald(k) || isFlux(k) || k == lastAppliedAnnotation
}

// PrimaryConfigMap returns the primary copy of a tracked ConfigMap: named <name>-primary in the
// same namespace, with data, binaryData and immutable copied, labels without herald.dev/*
// (in particular herald.dev/tracked, so the copy is not tracked itself) and Flux's keys, and
// annotations without herald.dev/*, Flux's keys and kubectl's last-applied-configuration.
func PrimaryConfigMap(cm *corev1.ConfigMap) *corev1.ConfigMap {
	out := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        PrimaryName(cm.Name),
			Namespace:   cm.Namespace,
			Labels:      filter(cm.Labels, dropLabel),
			Annotations: filter(cm.Annotations, dropConfigAnnotation),
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
func PrimarySecret(s *corev1.Secret) *corev1.Secret {
	out := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        PrimaryName(s.Name),
			Namespace:   s.Namespace,
			Labels:      filter(s.Labels, dropLabel),
			Annotations: filter(s.Annotations, dropConfigAnnotation),
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
// <hpa>-primary, labels and annotations filtered as for the primary workload, the same spec
// (metrics, behavior, bounds) but scaleTargetRef naming primaryWorkload, and minReplicas /
// maxReplicas replaced by overrides (canary.spec.autoscalerRef.primaryScalerReplicas) where set.
func PrimaryHPA(hpa *autoscalingv2.HorizontalPodAutoscaler, primaryWorkload string, overrides *flaggerv1.ScalerReplicas) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: autoscalingv2.SchemeGroupVersion.String(), Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: primaryMeta(&hpa.ObjectMeta, "", ""),
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
