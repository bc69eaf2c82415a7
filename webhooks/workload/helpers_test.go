package workload

import (
	"context"
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/herald-rollouts/herald/internal/contract"
)

const (
	ns             = "test"
	controllerUser = "system:serviceaccount:herald-system:herald"
	controllerGrp  = "herald-controllers"
)

var testOpts = Options{ControllerUsername: controllerUser, ControllerGroups: []string{controllerGrp}}

// podinfo is a realistic target with two config references (a ConfigMap volume and a Secret
// env var).
func podinfo() *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "podinfo", Namespace: ns,
			Labels:      map[string]string{"app": "podinfo", contract.LabelCanary: "podinfo"},
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "3"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"app": "podinfo"},
					Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9797"},
				},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:    "podinfod",
						Image:   "ghcr.io/stefanprodan/podinfo:6.0.0",
						Command: []string{"./podinfo", "--port=9898", "--config-path=/etc/podinfo"},
						Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 9898, Protocol: corev1.ProtocolTCP}},
						Env: []corev1.EnvVar{
							{Name: "PODINFO_UI_COLOR", Value: "#34577c"},
							{Name: "PODINFO_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "podinfo-token"}, Key: "token"}}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/podinfo"}},
					}},
					Volumes: []corev1.Volume{{
						Name: "config",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "podinfo-config"}}},
					}},
				},
			},
		},
	}
}

func daemonset() *appsv1.DaemonSet {
	d := podinfo()
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
}

func configMap(name string, annotations map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations,
		Labels: map[string]string{contract.LabelTracked: contract.TrackedValue}}, Data: map[string]string{"k": "v"}}
}

func secret(name string, annotations map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations,
		Labels: map[string]string{contract.LabelTracked: contract.TrackedValue}}, Data: map[string][]byte{"token": []byte("s3cr3t")}}
}

func fakeReader(objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithObjects(objs...).Build()
}

// reader is a fake cache holding podinfo's configs with the given checksums.
func reader(cmSum, secretSum string, extra ...client.Object) client.Reader {
	objs := []client.Object{
		configMap("podinfo-config", map[string]string{contract.AnnotationChecksum: cmSum}),
		secret("podinfo-token", map[string]string{contract.AnnotationChecksum: secretSum}),
	}
	objs = append(objs, extra...)
	return fakeReader(objs...)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func request(t testing.TB, op admissionv1.Operation, obj, old runtime.Object, user string) admission.Request {
	t.Helper()
	kind := "Deployment"
	if obj != nil {
		if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
			kind = k
		}
	}
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		Name:      "podinfo",
		Namespace: ns,
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: user},
	}}
	if obj != nil {
		r.Object.Raw = mustJSON(t, obj)
	}
	if old != nil {
		r.OldObject.Raw = mustJSON(t, old)
	}
	return r
}

// applyPatch applies the response's patch to raw and returns the result.
func applyPatch(t testing.TB, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if len(resp.Patches) == 0 {
		return raw
	}
	p, err := jsonpatch.DecodePatch(mustJSON(t, resp.Patches))
	if err != nil {
		t.Fatalf("decoding patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying patch %s: %v", mustJSON(t, resp.Patches), err)
	}
	return out
}

// mutated runs the handler and returns the response and the resulting Deployment.
func mutated(t testing.TB, h admission.Handler, req admission.Request) (admission.Response, *appsv1.Deployment) {
	t.Helper()
	resp := h.Handle(context.Background(), req)
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(applyPatch(t, req.Object.Raw, resp), &d); err != nil {
		t.Fatal(err)
	}
	return resp, &d
}

func runtimeRaw(raw []byte) runtime.RawExtension { return runtime.RawExtension{Raw: raw} }
