package contract

import (
	"encoding/json"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func podinfo() *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{"app": "podinfo", "tier": "web"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9797"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:    "podinfod",
				Image:   "ghcr.io/stefanprodan/podinfo:6.0.0",
				Command: []string{"./podinfo", "--port=9898"},
				Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 9898, Protocol: corev1.ProtocolTCP}},
				Env:     []corev1.EnvVar{{Name: "PODINFO_UI_COLOR", Value: "#34577c"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/podinfo"}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "config",
				VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "podinfo-config"}}},
			}},
		},
	}
}

func mustOf(t *testing.T, tmpl *corev1.PodTemplateSpec, configs map[string]string) string {
	t.Helper()
	h, err := Revision(tmpl, configs)
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return h
}

// The golden values pin the algorithm: if one of these changes, every Herald user upgrading
// to this version would see an analysis start on every workload. Do not update them; if the
// algorithm must change, add a new one next to this one and migrate stored revisions.
func TestGolden(t *testing.T) {
	cases := []struct {
		name    string
		tmpl    *corev1.PodTemplateSpec
		configs map[string]string
		want    string
	}{
		{"empty template", &corev1.PodTemplateSpec{}, nil, "04c1fd1893d1c190"},
		{"nil template", nil, nil, "04c1fd1893d1c190"},
		{"podinfo", podinfo(), nil, "777321398302c1ad"},
		{"podinfo with configs", podinfo(), map[string]string{"configmap/podinfo-config": "0123456789abcdef", "secret/podinfo-token": "fedcba9876543210"}, "a138b7a71b204a38"},
	}
	for _, c := range cases {
		if got := mustOf(t, c.tmpl, c.configs); got != c.want {
			t.Errorf("%s: revision = %q, want %q (the revision algorithm changed: see the comment on TestGolden)", c.name, got, c.want)
		}
	}
	if got := ConfigChecksum(map[string]string{"a": "1", "b": "2"}, map[string][]byte{"c": {0, 1}}); got != "bac664c2cc50b7bf" {
		t.Errorf("ConfigChecksum = %q, the checksum algorithm changed", got)
	}
}

func TestStableAcrossMapOrderAndJSONRoundTrip(t *testing.T) {
	want := mustOf(t, podinfo(), map[string]string{"configmap/a": "1", "secret/b": "2", "configmap/c": "3"})
	for i := 0; i < 50; i++ {
		// Rebuilding the maps gives Go a chance to iterate them in another order.
		tmpl := podinfo()
		labels := map[string]string{}
		for k, v := range tmpl.Labels {
			labels[k] = v
		}
		tmpl.Labels = labels
		if got := mustOf(t, tmpl, map[string]string{"secret/b": "2", "configmap/c": "3", "configmap/a": "1"}); got != want {
			t.Fatalf("iteration %d: %q != %q", i, got, want)
		}
	}
	raw, err := json.Marshal(podinfo())
	if err != nil {
		t.Fatal(err)
	}
	var back corev1.PodTemplateSpec
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if got := mustOf(t, &back, map[string]string{"configmap/a": "1", "secret/b": "2", "configmap/c": "3"}); got != want {
		t.Fatalf("after a JSON round trip: %q != %q", got, want)
	}
}

// Fields that are null, empty objects or empty lists hash like absent fields, so the form
// the API server returns (with defaulted empty structs) and a hand-built object agree, and a
// field added to a future PodSpec changes nothing until it is set.
func TestEmptyValuesAreIgnored(t *testing.T) {
	want := mustOf(t, podinfo(), nil)
	tmpl := podinfo()
	tmpl.Spec.NodeSelector = map[string]string{}
	tmpl.Spec.Tolerations = []corev1.Toleration{}
	tmpl.Spec.Containers[0].Args = []string{}
	tmpl.Spec.Containers[0].Resources.Limits = corev1.ResourceList{}
	tmpl.Spec.SecurityContext = &corev1.PodSecurityContext{}
	if got := mustOf(t, tmpl, nil); got != want {
		t.Fatalf("empty values changed the revision: %q != %q", got, want)
	}
}

func TestHeraldMetadataIsIgnored(t *testing.T) {
	want := mustOf(t, podinfo(), nil)
	tmpl := podinfo()
	tmpl.Annotations[AnnotationRevision] = "whatever"
	tmpl.Annotations[Prefix+"desired-replicas"] = "3"
	tmpl.Labels[Prefix+"canary"] = "podinfo"
	if got := mustOf(t, tmpl, nil); got != want {
		t.Fatalf("herald.dev/ metadata changed the revision: %q != %q", got, want)
	}
	if tmpl.Annotations[AnnotationRevision] != "whatever" {
		t.Fatal("Revision modified its input")
	}
	// The node selector that empties an idle DaemonSet is Herald's too; others count.
	tmpl.Spec.NodeSelector = map[string]string{Prefix + "scale-to-zero": "true"}
	if got := mustOf(t, tmpl, nil); got != want {
		t.Fatalf("herald.dev/ node selector changed the revision: %q != %q", got, want)
	}
	tmpl.Spec.NodeSelector["disktype"] = "ssd"
	if got := mustOf(t, tmpl, nil); got == want {
		t.Fatal("a user's node selector did not change the revision")
	}
}

func TestAnyChangeGivesANewRevision(t *testing.T) {
	base := mustOf(t, podinfo(), map[string]string{"configmap/podinfo-config": "aaaa"})
	changes := map[string]func(*corev1.PodTemplateSpec, map[string]string){
		"image": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
		},
		"command": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Command = []string{"./podinfo", "--port=9899"}
		},
		"args added": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Args = []string{"--level=debug"}
		},
		"env value": func(p *corev1.PodTemplateSpec, _ map[string]string) { p.Spec.Containers[0].Env[0].Value = "#ff0000" },
		"env added": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "X", Value: "1"})
		},
		"volume": func(p *corev1.PodTemplateSpec, _ map[string]string) { p.Spec.Volumes[0].ConfigMap.Name = "other" },
		"resources": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("200m")
		},
		"limits added": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		},
		"template annotation": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-11-24T00:00:00Z"
		},
		"template label": func(p *corev1.PodTemplateSpec, _ map[string]string) { p.Labels["tier"] = "api" },
		"explicit false": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.AutomountServiceAccountToken = ptr.To(false)
		},
		"config checksum": func(_ *corev1.PodTemplateSpec, c map[string]string) { c["configmap/podinfo-config"] = "bbbb" },
		"config added":    func(_ *corev1.PodTemplateSpec, c map[string]string) { c["secret/token"] = "cccc" },
		"container order": func(p *corev1.PodTemplateSpec, _ map[string]string) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "busybox"})
			p.Spec.Containers[0], p.Spec.Containers[1] = p.Spec.Containers[1], p.Spec.Containers[0]
		},
	}
	seen := map[string]string{base: "base"}
	for name, change := range changes {
		tmpl := podinfo()
		configs := map[string]string{"configmap/podinfo-config": "aaaa"}
		change(tmpl, configs)
		got := mustOf(t, tmpl, configs)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: revision %q is the same as for %s", name, got, prev)
		}
		seen[got] = name
	}
}

func TestConfigChecksum(t *testing.T) {
	a := ConfigChecksum(map[string]string{"k": "v"}, nil)
	if a != ConfigChecksum(map[string]string{"k": "v"}, map[string][]byte{}) {
		t.Error("an empty binaryData changed the checksum")
	}
	distinct := map[string]string{
		"data":           a,
		"value changed":  ConfigChecksum(map[string]string{"k": "w"}, nil),
		"key changed":    ConfigChecksum(map[string]string{"j": "v"}, nil),
		"binaryData":     ConfigChecksum(map[string]string{"k": "v"}, map[string][]byte{"b": {1}}),
		"moved to bytes": ConfigChecksum(nil, map[string][]byte{"k": []byte("v")}),
		"split":          ConfigChecksum(map[string]string{"k": "", "v": ""}, nil),
		"empty":          ConfigChecksum(nil, nil),
	}
	seen := map[string]string{}
	for name, sum := range distinct {
		if prev, dup := seen[sum]; dup {
			t.Errorf("%s and %s have the same checksum %q", name, prev, sum)
		}
		seen[sum] = name
	}
	if SecretChecksum(map[string][]byte{"k": []byte("v")}) != distinct["moved to bytes"] {
		t.Error("SecretChecksum differs from ConfigChecksum of binary data")
	}
}

func TestRefs(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-secret"}}}}}},
		Containers: []corev1.Container{{
			Name: "app",
			Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-cm"}, Key: "a", Optional: ptr.To(true)}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "b"}}},
				{Name: "C", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}}}},
		}},
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}, Optional: ptr.To(true)}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret", Optional: ptr.To(true)}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret"}}},
			}}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
	got := Refs(spec)
	want := []Ref{
		{ConfigMap, "env-cm", true},
		{ConfigMap, "proj-cm", false},
		{ConfigMap, "vol-cm", false}, // optional as a volume, required through envFrom
		{Secret, "env-secret", false},
		{Secret, "init-secret", false},
		{Secret, "proj-secret", false},
		{Secret, "vol-secret", true},
	}
	if len(got) != len(want) {
		t.Fatalf("Refs = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Refs[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if Refs(nil) != nil {
		t.Error("Refs(nil) should be nil")
	}
}

// The canonical form is what the golden hashes stand on; this shows it for the podinfo template
// so a reviewer can see that nulls and empty values are gone and keys are sorted.
func TestCanonicalForm(t *testing.T) {
	got, err := canonicalTemplate(podinfo())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"annotations":{"prometheus.io/port":"9797","prometheus.io/scrape":"true"},"labels":{"app":"podinfo","tier":"web"}},"spec":{"containers":[{"command":["./podinfo","--port=9898"],"env":[{"name":"PODINFO_UI_COLOR","value":"#34577c"}],"image":"ghcr.io/stefanprodan/podinfo:6.0.0","name":"podinfod","ports":[{"containerPort":9898,"name":"http","protocol":"TCP"}],"resources":{"requests":{"cpu":"100m"}},"volumeMounts":[{"mountPath":"/etc/podinfo","name":"config"}]}],"volumes":[{"configMap":{"name":"podinfo-config"},"name":"config"}]}}`
	if string(got) != want {
		t.Fatalf("canonical form:\n got %s\nwant %s", got, want)
	}
}

// The templates of testdata/golden-templates.json were generated at random (odd strings,
// invalid UTF-8, huge and negative numbers, quantities, empty values everywhere) and their
// revisions computed by Herald's first implementation of the canonical form: every later
// implementation must give the same revisions.
func TestGoldenCorpus(t *testing.T) {
	raw, err := os.ReadFile("testdata/golden-templates.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus []struct {
		Template json.RawMessage   `json:"template"`
		Configs  map[string]string `json:"configs"`
		Revision string            `json:"revision"`
	}
	if err := json.Unmarshal(raw, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus) < 50 {
		t.Fatalf("the corpus has %d templates, want at least 50", len(corpus))
	}
	for i, c := range corpus {
		var tmpl corev1.PodTemplateSpec
		if err := json.Unmarshal(c.Template, &tmpl); err != nil {
			t.Fatalf("template %d: %v", i, err)
		}
		if got := mustOf(t, &tmpl, c.Configs); got != c.Revision {
			t.Errorf("template %d: revision = %q, want %q (the revision algorithm changed: see TestGolden)", i, got, c.Revision)
		}
	}
}

func BenchmarkRevision(b *testing.B) {
	tmpl := podinfo()
	configs := map[string]string{"configmap/podinfo-config": "0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Revision(tmpl, configs); err != nil {
			b.Fatal(err)
		}
	}
}
