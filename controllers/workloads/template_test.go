package workloads

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-rollouts/herald/internal/contract"
)

func TestConfigRenames(t *testing.T) {
	cases := []struct {
		name string
		refs []contract.Ref
		want map[string]string
	}{
		{"none", nil, nil},
		{"configmap and secret", []contract.Ref{
			{Kind: contract.ConfigMap, Name: "cfg"},
			{Kind: contract.Secret, Name: "cfg", Optional: true},
		}, map[string]string{"configmap/cfg": "cfg-primary", "secret/cfg": "cfg-primary"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ConfigRenames(tc.refs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func cmVol(name, cm string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}}
}

func secretVol(name, s string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s}}}
}

func projectedVol(name, cm, s string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: s}}},
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
		},
	}}}
}

func envContainer(name, cm, s string) corev1.Container {
	return corev1.Container{
		Name: name,
		Env: []corev1.EnvVar{
			{Name: "PLAIN", Value: "x"},
			{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Key: "k"}}},
			{Name: "FROM_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: s}, Key: "k"}}},
			{Name: "FROM_FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		},
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s}}},
		},
	}
}

// template references tracked configs (cm, sec) and untracked ones (cm-untracked, sec-untracked).
func template() *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: map[string]string{"app": "podinfo", "tier": "web", "herald.dev/canary": "podinfo"},
			Annotations: map[string]string{
				"prometheus.io/scrape": "true", "herald.dev/revision": "abc", "kubectl.kubernetes.io/restartedAt": "now",
			},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{envContainer("init", "cm", "sec")},
			Containers: []corev1.Container{
				envContainer("app", "cm", "sec"),
				envContainer("untracked", "cm-untracked", "sec-untracked"),
			},
			Volumes: []corev1.Volume{
				cmVol("a", "cm"), secretVol("b", "sec"), projectedVol("c", "cm", "sec"),
				cmVol("d", "cm-untracked"), secretVol("e", "sec-untracked"), projectedVol("f", "cm-untracked", "sec-untracked"),
				{Name: "g", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
}

var trackedRenames = map[string]string{"configmap/cm": "cm-primary", "secret/sec": "sec-primary"}

func TestPrimaryPodTemplateRenames(t *testing.T) {
	in := template()
	orig := in.DeepCopy()
	out := PrimaryPodTemplate(in, "app", "podinfo", trackedRenames)
	if !equality.Semantic.DeepEqual(in, orig) {
		t.Fatal("input modified")
	}

	want := template()
	want.Labels = map[string]string{"app": "podinfo-primary", "tier": "web"}
	want.Annotations = map[string]string{"prometheus.io/scrape": "true", "kubectl.kubernetes.io/restartedAt": "now"}
	want.Spec.InitContainers = []corev1.Container{envContainer("init", "cm-primary", "sec-primary")}
	want.Spec.Containers[0] = envContainer("app", "cm-primary", "sec-primary")
	want.Spec.Volumes[0] = cmVol("a", "cm-primary")
	want.Spec.Volumes[1] = secretVol("b", "sec-primary")
	want.Spec.Volumes[2] = projectedVol("c", "cm-primary", "sec-primary")
	if !equality.Semantic.DeepEqual(&out, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", out, want)
	}

	// Every tracked reference is renamed, every untracked one is left alone.
	for _, r := range contract.Refs(&out.Spec) {
		switch r.Name {
		case "cm-primary", "sec-primary", "cm-untracked", "sec-untracked":
		default:
			t.Errorf("unexpected reference %s", r.Key())
		}
	}
}

func TestPrimaryPodTemplateNoRenames(t *testing.T) {
	for _, renames := range []map[string]string{nil, {"configmap/other": "other-primary"}} {
		out := PrimaryPodTemplate(template(), "app", "podinfo", renames)
		if !equality.Semantic.DeepEqual(out.Spec, template().Spec) {
			t.Fatalf("renames %v changed the spec", renames)
		}
	}
}

func TestPrimaryPodTemplateNil(t *testing.T) {
	out := PrimaryPodTemplate(nil, "app", "podinfo", nil)
	if !reflect.DeepEqual(out.Labels, map[string]string{"app": "podinfo-primary"}) || out.Annotations != nil {
		t.Fatalf("got %+v", out.ObjectMeta)
	}
}

func TestPrimaryPodTemplateSelectors(t *testing.T) {
	sel := func(v string) *metav1.LabelSelector {
		return &metav1.LabelSelector{
			MatchLabels: map[string]string{"app": v, "tier": "podinfo"},
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{v, "other"}},
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"podinfo"}},
			},
		}
	}
	spec := func(v, unrelated string) corev1.PodSpec {
		return corev1.PodSpec{
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{
				{MaxSkew: 1, TopologyKey: "zone", LabelSelector: sel(v)},
				{MaxSkew: 1, TopologyKey: "host", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": unrelated}}},
				{MaxSkew: 1, TopologyKey: "none"},
			},
			Affinity: &corev1.Affinity{
				PodAffinity: &corev1.PodAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone", LabelSelector: sel(v)}},
				},
				PodAntiAffinity: &corev1.PodAntiAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
						{TopologyKey: "host", LabelSelector: sel(v)},
						{TopologyKey: "host", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": unrelated}}},
					},
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
						{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: sel(v)}},
					},
				},
			},
		}
	}
	in := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "podinfo"}}, Spec: spec("podinfo", "redis")}
	out := PrimaryPodTemplate(in, "app", "podinfo", nil)
	if want := spec("podinfo-primary", "redis"); !equality.Semantic.DeepEqual(out.Spec, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", out.Spec, want)
	}
	if !equality.Semantic.DeepEqual(in.Spec, spec("podinfo", "redis")) {
		t.Fatal("input modified")
	}
}
