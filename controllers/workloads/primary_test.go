package workloads

import (
	"maps"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

func targetDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "podinfo", Namespace: "test", Generation: 4, ResourceVersion: "123", UID: "uid",
			Labels: map[string]string{
				"app": "podinfo", "team": "a", "herald.dev/canary": "podinfo",
				"kustomize.toolkit.fluxcd.io/name": "apps", "helm.toolkit.fluxcd.io/namespace": "flux-system",
			},
			Annotations: map[string]string{
				"owner":                             "me",
				"herald.dev/revision":               "abc",
				"herald.dev/idle":                   "abc",
				"herald.dev/desired-replicas":       "3",
				corev1.LastAppliedConfigAnnotation:  "{}",
				"deployment.kubernetes.io/revision": "7",
			},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo", "team": "a"}},
			Template: *template(),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromString("25%")),
			}},
			MinReadySeconds:         5,
			RevisionHistoryLimit:    ptr.To[int32](3),
			ProgressDeadlineSeconds: ptr.To[int32](120),
			Paused:                  true,
		},
		Status: appsv1.DeploymentStatus{Replicas: 3},
	}
}

func TestPrimaryDeployment(t *testing.T) {
	wantMeta := metav1.ObjectMeta{
		Name: "podinfo-primary", Namespace: "test",
		Labels:      map[string]string{"app": "podinfo-primary", "team": "a"},
		Annotations: map[string]string{"owner": "me"},
	}
	newSel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo-primary"}}
	oldSel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo-primary", "team": "a"}}
	cases := []struct {
		name     string
		existing *appsv1.Deployment
		replicas *int32
		wantSel  *metav1.LabelSelector
	}{
		{"create", nil, ptr.To[int32](2), newSel},
		{"existing without selector", &appsv1.Deployment{}, nil, newSel},
		{"existing selector kept", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Selector: oldSel}}, ptr.To[int32](5), oldSel},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := targetDeployment()
			orig := target.DeepCopy()
			got := PrimaryDeployment(target, tc.existing, "app", "podinfo", trackedRenames, tc.replicas, LabelPrefixes{"*"})
			if !equality.Semantic.DeepEqual(target, orig) {
				t.Fatal("target modified")
			}
			if !reflect.DeepEqual(got.ObjectMeta, wantMeta) {
				t.Errorf("meta = %+v", got.ObjectMeta)
			}
			if got.APIVersion != "apps/v1" || got.Kind != "Deployment" {
				t.Errorf("type = %+v", got.TypeMeta)
			}
			if !reflect.DeepEqual(got.Spec.Selector, tc.wantSel) {
				t.Errorf("selector = %+v", got.Spec.Selector)
			}
			if tc.existing != nil && got.Spec.Selector == tc.existing.Spec.Selector {
				t.Error("selector aliases existing")
			}
			if !reflect.DeepEqual(got.Spec.Replicas, tc.replicas) || (tc.replicas != nil && got.Spec.Replicas == tc.replicas) {
				t.Errorf("replicas = %v (must be a copy of %v)", got.Spec.Replicas, tc.replicas)
			}
			if got.Spec.MinReadySeconds != 5 || *got.Spec.RevisionHistoryLimit != 3 || *got.Spec.ProgressDeadlineSeconds != 120 {
				t.Errorf("copied fields = %+v", got.Spec)
			}
			if !equality.Semantic.DeepEqual(got.Spec.Strategy, orig.Spec.Strategy) || got.Spec.Strategy.RollingUpdate == target.Spec.Strategy.RollingUpdate {
				t.Errorf("strategy = %+v", got.Spec.Strategy)
			}
			if got.Spec.Paused {
				t.Error("paused copied")
			}
			wantTmpl := PrimaryPodTemplate(&orig.Spec.Template, "app", "podinfo", trackedRenames)
			if !equality.Semantic.DeepEqual(got.Spec.Template, wantTmpl) {
				t.Errorf("template = %+v", got.Spec.Template)
			}
			if got.OwnerReferences != nil || got.ResourceVersion != "" || got.UID != "" {
				t.Error("server fields or owner references set")
			}
			// Deterministic: a second build is identical.
			if again := PrimaryDeployment(target, tc.existing, "app", "podinfo", trackedRenames, tc.replicas, LabelPrefixes{"*"}); !reflect.DeepEqual(got, again) {
				t.Error("not deterministic")
			}
		})
	}
}

func TestPrimaryDaemonSet(t *testing.T) {
	target := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "agent", Namespace: "kube-system",
			Labels:      map[string]string{"name": "agent", "herald.dev/canary": "agent"},
			Annotations: map[string]string{"herald.dev/idle": "x", "note": "n"},
		},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"name": "agent"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/os": "linux", "flagger.app/scale-to-zero": "true", "herald.dev/idle": "true"},
					Volumes:      []corev1.Volume{cmVol("c", "cm")},
				},
			},
			UpdateStrategy:       appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
			MinReadySeconds:      7,
			RevisionHistoryLimit: ptr.To[int32](2),
		},
	}
	orig := target.DeepCopy()
	for _, existing := range []*appsv1.DaemonSet{nil, {Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "agent-primary", "x": "y"}}}}} {
		got := PrimaryDaemonSet(target, existing, "name", "agent", trackedRenames, LabelPrefixes{"*"})
		if !equality.Semantic.DeepEqual(target, orig) {
			t.Fatal("target modified")
		}
		want := &appsv1.DaemonSet{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: metav1.ObjectMeta{
				Name: "agent-primary", Namespace: "kube-system",
				Labels: map[string]string{"name": "agent-primary"}, Annotations: map[string]string{"note": "n"},
			},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "agent-primary"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"name": "agent-primary"}},
					Spec: corev1.PodSpec{
						NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
						Volumes:      []corev1.Volume{cmVol("c", "cm-primary")},
					},
				},
				UpdateStrategy:       appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
				MinReadySeconds:      7,
				RevisionHistoryLimit: ptr.To[int32](2),
			},
		}
		if existing != nil {
			want.Spec.Selector = existing.Spec.Selector
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got\n%+v\nwant\n%+v", got, want)
		}
	}
}

func TestPrimaryConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: "cfg", Namespace: "test", ResourceVersion: "9",
			Labels:          map[string]string{"herald.dev/tracked": "true", "app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "x"},
			Annotations:     map[string]string{"herald.dev/checksum": "abc", "note": "n", corev1.LastAppliedConfigAnnotation: "{}"},
			OwnerReferences: []metav1.OwnerReference{{Name: "someone"}},
		},
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": {0, 1}},
		Immutable:  ptr.To(true),
	}
	got := PrimaryConfigMap(cm, LabelPrefixes{"*"})
	want := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "cfg-primary", Namespace: "test",
			Labels: map[string]string{"app": "podinfo"}, Annotations: map[string]string{"note": "n"},
		},
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": {0, 1}},
		Immutable:  ptr.To(true),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	got.BinaryData["b"][0] = 9
	got.Data["a"] = "2"
	if cm.BinaryData["b"][0] != 0 || cm.Data["a"] != "1" {
		t.Fatal("copy aliases the source")
	}
	if empty := PrimaryConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e"}}, LabelPrefixes{"*"}); empty.Labels != nil || empty.Data != nil || empty.BinaryData != nil {
		t.Fatalf("empty = %+v", empty)
	}
}

func TestPrimarySecret(t *testing.T) {
	cases := []struct {
		name string
		in   *corev1.Secret
		want *corev1.Secret
	}{
		{
			name: "tls",
			in: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "test",
					Labels:      map[string]string{"herald.dev/tracked": "true"},
					Annotations: map[string]string{"herald.dev/checksum": "x", "flagger.app/config-tracking": "enabled"}},
				Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")},
			},
			want: &corev1.Secret{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: metav1.ObjectMeta{Name: "tls-primary", Namespace: "test",
					Annotations: map[string]string{"flagger.app/config-tracking": "enabled"}},
				Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")},
			},
		},
		{
			name: "opaque with stringData",
			in: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "test"},
				Type:       corev1.SecretTypeOpaque,
				StringData: map[string]string{"p": "w"},
			},
			want: &corev1.Secret{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: metav1.ObjectMeta{Name: "s-primary", Namespace: "test"},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{"p": []byte("w")},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := PrimarySecret(tc.in, LabelPrefixes{"*"}); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPrimaryHPA(t *testing.T) {
	hpa := func() *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test",
				Labels:      map[string]string{"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "apps"},
				Annotations: map[string]string{"herald.dev/x": "y", "note": "n"}},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
				MinReplicas:    ptr.To[int32](2),
				MaxReplicas:    4,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)},
				}}},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}},
			},
		}
	}
	cases := []struct {
		name      string
		overrides *flaggerv1.ScalerReplicas
		wantMin   *int32
		wantMax   int32
	}{
		{"no overrides", nil, ptr.To[int32](2), 4},
		{"empty overrides", &flaggerv1.ScalerReplicas{}, ptr.To[int32](2), 4},
		{"min only", &flaggerv1.ScalerReplicas{MinReplicas: ptr.To[int32](3)}, ptr.To[int32](3), 4},
		{"max only", &flaggerv1.ScalerReplicas{MaxReplicas: ptr.To[int32](10)}, ptr.To[int32](2), 10},
		{"both", &flaggerv1.ScalerReplicas{MinReplicas: ptr.To[int32](5), MaxReplicas: ptr.To[int32](9)}, ptr.To[int32](5), 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := hpa()
			got := PrimaryHPA(in, "podinfo-primary", tc.overrides, LabelPrefixes{"*"})
			if !equality.Semantic.DeepEqual(in, hpa()) {
				t.Fatal("input modified")
			}
			want := hpa()
			want.TypeMeta = metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"}
			want.ObjectMeta = metav1.ObjectMeta{Name: "podinfo-primary", Namespace: "test",
				Labels: map[string]string{"app": "podinfo"}, Annotations: map[string]string{"note": "n"}}
			want.Spec.ScaleTargetRef.Name = "podinfo-primary"
			want.Spec.MinReplicas = tc.wantMin
			want.Spec.MaxReplicas = tc.wantMax
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
			if tc.overrides != nil && tc.overrides.MinReplicas != nil && got.Spec.MinReplicas == tc.overrides.MinReplicas {
				t.Fatal("minReplicas aliases the Canary")
			}
		})
	}
}

// TestIncludeLabelPrefix: Flagger's -include-label-prefix rule decides which of the target's
// labels and annotations the primary and the primary copies of configs get: none by default,
// those with a listed prefix, or all with "*"; Flux's, Herald's and kubectl's never.
func TestIncludeLabelPrefix(t *testing.T) {
	target := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test",
			Labels: map[string]string{
				"app": "podinfo", "app.kubernetes.io/instance": "podinfo-helm", "argocd.argoproj.io/instance": "apps",
				"kustomize.toolkit.fluxcd.io/name": "apps", "herald.dev/canary": "podinfo",
			},
			Annotations: map[string]string{
				"app.kubernetes.io/managed-by": "Helm", "meta.helm.sh/release-name": "podinfo",
				corev1.LastAppliedConfigAnnotation: "{}", "herald.dev/revision": "x",
			},
		},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}}},
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "test",
		Labels: target.Labels, Annotations: target.Annotations}}
	for _, tc := range []struct {
		name            string
		include         LabelPrefixes
		wantLabels      map[string]string // of the primary Deployment
		wantAnnotations map[string]string
	}{
		{"Flagger's default: none", nil,
			map[string]string{"app": "podinfo-primary"}, nil},
		{"Flagger's kustomize overlays: app.kubernetes.io", LabelPrefixes{"app.kubernetes.io"},
			map[string]string{"app": "podinfo-primary", "app.kubernetes.io/instance": "podinfo-helm"},
			map[string]string{"app.kubernetes.io/managed-by": "Helm"}},
		{"all", LabelPrefixes{"*"},
			map[string]string{"app": "podinfo-primary", "app.kubernetes.io/instance": "podinfo-helm", "argocd.argoproj.io/instance": "apps"},
			map[string]string{"app.kubernetes.io/managed-by": "Helm", "meta.helm.sh/release-name": "podinfo"}},
		{"two prefixes", LabelPrefixes{"argocd.argoproj.io", "meta.helm.sh"},
			map[string]string{"app": "podinfo-primary", "argocd.argoproj.io/instance": "apps"},
			map[string]string{"meta.helm.sh/release-name": "podinfo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PrimaryDeployment(target, nil, "app", "podinfo", nil, nil, tc.include)
			if !reflect.DeepEqual(got.Labels, tc.wantLabels) {
				t.Errorf("primary labels %v, want %v", got.Labels, tc.wantLabels)
			}
			if !reflect.DeepEqual(got.Annotations, tc.wantAnnotations) {
				t.Errorf("primary annotations %v, want %v", got.Annotations, tc.wantAnnotations)
			}
			copyOf := PrimaryConfigMap(cm, tc.include)
			wantCopyLabels := maps.Clone(tc.wantLabels)
			delete(wantCopyLabels, "app")
			if tc.include.Keeps("app") {
				wantCopyLabels["app"] = "podinfo"
			}
			if len(wantCopyLabels) == 0 {
				wantCopyLabels = nil
			}
			if !reflect.DeepEqual(copyOf.Labels, wantCopyLabels) {
				t.Errorf("config copy labels %v, want %v", copyOf.Labels, wantCopyLabels)
			}
			if !reflect.DeepEqual(copyOf.Annotations, tc.wantAnnotations) {
				t.Errorf("config copy annotations %v, want %v", copyOf.Annotations, tc.wantAnnotations)
			}
		})
	}
}
