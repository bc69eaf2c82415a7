package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/webhooks"
)

const hooksNS = "hooks"

// managedDeployment is podinfo labelled as a Canary target, as the controller leaves it.
func managedDeployment(name string, replicas int32) *appsv1.Deployment {
	var d appsv1.Deployment
	sample("podinfo-deployment.yaml", &d)
	d.Name, d.Namespace = name, hooksNS
	d.Labels[contract.LabelCanary] = name
	d.Spec.Replicas = &replicas
	return &d
}

// manifestOf turns a Deployment into the manifest `kubectl apply` or Flux would send.
func manifestOf(d *appsv1.Deployment) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u
}

func getDeployment(ctx context.Context, name string) *appsv1.Deployment {
	var d appsv1.Deployment
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: hooksNS, Name: name}, &d)).To(Succeed())
	return &d
}

// heraldClient acts with Herald's own identity, as the controller will.
func heraldClient() client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", heraldKubeconfig)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// markIdle does what the controller does after initialisation or promotion: scale the target
// to zero and record the revision it is idle at.
func markIdle(ctx context.Context, name string) string {
	d := getDeployment(ctx, name)
	rev := d.Annotations[contract.AnnotationRevision]
	Expect(rev).NotTo(BeEmpty())
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"replicas":0}}`, contract.AnnotationIdle, rev)
	Expect(heraldClient().Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	Expect(*getDeployment(ctx, name).Spec.Replicas).To(BeZero(), "the controller scales an idle target to zero")
	return rev
}

// grantScale lets Herald's user update deployments/scale in the hooks namespace.
func grantScale(ctx context.Context) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "scale", Namespace: hooksNS},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "scale", Namespace: hooksNS},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "scale"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: harness.HeraldUser}}}
	Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, role))).To(Succeed())
	Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, binding))).To(Succeed())
}

func podsOf(ctx context.Context, name string) int {
	var pods corev1.PodList
	Expect(k8s.List(ctx, &pods, client.InNamespace(hooksNS), client.MatchingLabels{"app": "podinfo"})).To(Succeed())
	n := 0
	for _, p := range pods.Items {
		for _, o := range p.OwnerReferences {
			if strings.HasPrefix(o.Name, name+"-") {
				n++
			}
		}
	}
	return n
}

// webhookCalls reads controller-runtime's request counter of one webhook path from /metrics.
func webhookCalls(path string) int {
	re := regexp.MustCompile(`(?m)^controller_runtime_webhook_requests_total\{code="\d+",webhook="` + regexp.QuoteMeta(path) + `"\} (\d+)$`)
	total := 0
	for _, m := range re.FindAllStringSubmatch(scrape(herald.MetricsURL), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total
}

func writeManifest(obj *unstructured.Unstructured) string {
	b, err := yaml.Marshal(obj)
	Expect(err).NotTo(HaveOccurred())
	f := filepath.Join(GinkgoT().TempDir(), "manifest.yaml")
	Expect(os.WriteFile(f, b, 0o600)).To(Succeed())
	return f
}

var _ = Describe("The workload webhook", func() {
	BeforeEach(func() { createNamespace(hooksNS) })

	It("names the revision at admission with the one hash function, stable across identical applies", func(ctx SpecContext) {
		d := managedDeployment("stable", 2)
		apply := func(obj *appsv1.Deployment) {
			Expect(k8s.Patch(ctx, manifestOf(obj), client.Apply, client.FieldOwner("user"), client.ForceOwnership)).To(Succeed())
		}
		apply(d)
		first := getDeployment(ctx, "stable")
		rev1 := first.Annotations[contract.AnnotationRevision]
		want, err := contract.Revision(&first.Spec.Template, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rev1).To(Equal(want), "the webhook's revision is contract.Of of the stored template")

		apply(d)
		again := getDeployment(ctx, "stable")
		Expect(again.Annotations[contract.AnnotationRevision]).To(Equal(rev1))
		Expect(again.Generation).To(Equal(first.Generation), "an identical apply changes nothing")

		d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
		apply(d)
		changed := getDeployment(ctx, "stable")
		rev2 := changed.Annotations[contract.AnnotationRevision]
		Expect(rev2).NotTo(Equal(rev1))
		want, err = contract.Revision(&changed.Spec.Template, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rev2).To(Equal(want))
	})

	It("is never called for unmanaged Deployments, nor for changes outside the template and replicas", func(ctx SpecContext) {
		managed := managedDeployment("quiet", 1)
		Expect(k8s.Create(ctx, managed)).To(Succeed())
		before := webhookCalls(webhooks.WorkloadPath)
		Expect(before).To(BeNumerically(">", 0), "the managed create reached the webhook")

		plain := managedDeployment("unmanaged", 1)
		delete(plain.Labels, contract.LabelCanary)
		Expect(k8s.Create(ctx, plain)).To(Succeed())
		plain.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
		Expect(k8s.Update(ctx, plain)).To(Succeed())
		Expect(getDeployment(ctx, "unmanaged").Annotations).NotTo(HaveKey(contract.AnnotationRevision))

		// A label edit on a managed Deployment is filtered out by the matchConditions.
		patch := []byte(`{"metadata":{"labels":{"team":"web"}}}`)
		Expect(k8s.Patch(ctx, getDeployment(ctx, "quiet"), client.RawPatch(types.MergePatchType, patch))).To(Succeed())

		Consistently(func() int { return webhookCalls(webhooks.WorkloadPath) }).
			WithTimeout(2 * time.Second).Should(Equal(before))
	})

	It("keeps an idle target at zero replicas through kubectl apply, a second SSA manager and a GitOps loop", func(ctx SpecContext) {
		d := managedDeployment("idle", 2)
		file := writeManifest(manifestOf(d))
		out, err := kubectl("apply", "-f", file)
		Expect(err).NotTo(HaveOccurred(), out)
		rev := markIdle(ctx, "idle")
		Eventually(func() int { return podsOf(ctx, "idle") }).WithTimeout(30 * time.Second).Should(BeZero())

		By("client-side kubectl apply of replicas: 2")
		out, err = kubectl("apply", "-f", file)
		Expect(err).NotTo(HaveOccurred(), out)
		got := getDeployment(ctx, "idle")
		Expect(*got.Spec.Replicas).To(BeZero())
		Expect(got.Annotations).To(HaveKeyWithValue(contract.AnnotationDesiredReplicas, "2"))
		Expect(got.Annotations).To(HaveKeyWithValue(contract.AnnotationRevision, rev))

		By("server-side apply by a second field manager asking for 3")
		three := managedDeployment("idle", 3)
		Expect(k8s.Patch(ctx, manifestOf(three), client.Apply, client.FieldOwner("helm"), client.ForceOwnership)).To(Succeed())
		got = getDeployment(ctx, "idle")
		Expect(*got.Spec.Replicas).To(BeZero())
		Expect(got.Annotations).To(HaveKeyWithValue(contract.AnnotationDesiredReplicas, "3"))

		By("Flux's server-side apply engine applying the same manifest 20 times")
		flux := ssa.NewResourceManager(k8s, nil, ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"})
		manifest := manifestOf(managedDeployment("idle", 2))
		var actions []string
		for i := 0; i < 20; i++ {
			entry, err := flux.Apply(ctx, manifest.DeepCopy(), ssa.DefaultApplyOptions())
			Expect(err).NotTo(HaveOccurred())
			actions = append(actions, string(entry.Action))
		}
		Expect(actions[1:]).To(HaveEach(string(ssa.UnchangedAction)), "Flux sees drift after the first apply: %v", actions)
		got = getDeployment(ctx, "idle")
		Expect(*got.Spec.Replicas).To(BeZero())
		Expect(got.Annotations).To(HaveKeyWithValue(contract.AnnotationRevision, rev), "no new revision")
		Consistently(func() int { return podsOf(ctx, "idle") }).WithTimeout(2*time.Second).Should(BeZero(), "no pod starts on the idle target")

		By("kubectl scale is refused with directions to the primary")
		out, err = kubectl("-n", hooksNS, "scale", "deployment/idle", "--replicas=5")
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("idle-primary"))
		Expect(out).To(ContainSubstring("--replicas 5"))
		Expect(*getDeployment(ctx, "idle").Spec.Replicas).To(BeZero())

		By("the controller itself may scale the idle target, through the same scale subresource")
		// Herald itself never uses /scale, so its role lacks the verb: granted here for this check
		// of the webhook's exemption only.
		grantScale(ctx)
		scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 1}}
		Eventually(func() error { // the new binding reaches the authorizer through an informer
			return heraldClient().SubResource("scale").Update(ctx, getDeployment(ctx, "idle"), client.WithSubResourceBody(scale))
		}).WithTimeout(5 * time.Second).Should(Succeed())
		Expect(*getDeployment(ctx, "idle").Spec.Replicas).To(Equal(int32(1)))
		Expect(heraldClient().Patch(ctx, getDeployment(ctx, "idle"), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`)))).To(Succeed())

		By("a new pod template is a new revision and its replicas pass")
		d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
		out, err = kubectl("apply", "-f", writeManifest(manifestOf(d)))
		Expect(err).NotTo(HaveOccurred(), out)
		got = getDeployment(ctx, "idle")
		Expect(got.Annotations[contract.AnnotationRevision]).NotTo(Equal(rev))
		Expect(*got.Spec.Replicas).To(Equal(int32(2)))
	})

	It("does not block deploys while Herald is down, and Herald's own kinds fail closed", func(ctx SpecContext) {
		d := managedDeployment("herald-down", 1)
		Expect(k8s.Create(ctx, d)).To(Succeed())
		herald.Stop()
		DeferCleanup(func(ctx SpecContext) { startHerald(ctx) }, NodeTimeout(time.Minute))

		d = getDeployment(ctx, "herald-down")
		d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.2"
		start := time.Now()
		Expect(k8s.Update(ctx, d)).To(Succeed())
		Expect(time.Since(start)).To(BeNumerically("<", 4*time.Second), "the 2 s webhook timeout bounds the wait")

		var c flaggerv1.Canary
		sample("podinfo-canary.yaml", &c)
		c.Namespace, c.Name = hooksNS, "while-down"
		err := k8s.Create(ctx, &c)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("canary.herald.dev"))
	})
})

var _ = Describe("The config webhook", func() {
	BeforeEach(func() { createNamespace(hooksNS) })

	It("writes a checksum on tracked ConfigMaps and Secrets only, never their values", func(ctx SpecContext) {
		tracked := map[string]string{contract.LabelTracked: contract.TrackedValue}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tracked", Namespace: hooksNS, Labels: tracked},
			Data: map[string]string{"color": "blue"}}
		Expect(k8s.Create(ctx, cm)).To(Succeed())
		Expect(cm.Annotations).To(HaveKeyWithValue(contract.AnnotationChecksum, contract.ConfigChecksum(cm.Data, nil)))
		cm.Data["color"] = "green"
		Expect(k8s.Update(ctx, cm)).To(Succeed())
		Expect(cm.Annotations).To(HaveKeyWithValue(contract.AnnotationChecksum, contract.ConfigChecksum(map[string]string{"color": "green"}, nil)))

		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tracked", Namespace: hooksNS, Labels: tracked},
			StringData: map[string]string{"token": "s3cr3t-value"}}
		Expect(k8s.Create(ctx, secret)).To(Succeed())
		Expect(secret.Annotations).To(HaveKeyWithValue(contract.AnnotationChecksum, contract.SecretChecksum(map[string][]byte{"token": []byte("s3cr3t-value")})))
		Expect(readFile(heraldLog.Name())).NotTo(ContainSubstring("s3cr3t-value"))

		optedOut := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "opted-out", Namespace: hooksNS, Labels: tracked,
			Annotations: map[string]string{contract.FlaggerConfigTracking: "disabled"}}, Data: map[string]string{"a": "b"}}
		Expect(k8s.Create(ctx, optedOut)).To(Succeed())
		Expect(optedOut.Annotations).NotTo(HaveKey(contract.AnnotationChecksum))

		plain := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: hooksNS}, Data: map[string]string{"a": "b"}}
		Expect(k8s.Create(ctx, plain)).To(Succeed())
		Expect(plain.Annotations).NotTo(HaveKey(contract.AnnotationChecksum))
	})
})

// createReferencedTemplates creates the MetricTemplates a corpus Canary refers to, as the
// tutorials do before applying the Canary.
func createReferencedTemplates(ctx context.Context, u *unstructured.Unstructured) {
	metrics, _, _ := unstructured.NestedSlice(u.Object, "spec", "analysis", "metrics")
	for _, m := range metrics {
		name, _, _ := unstructured.NestedString(m.(map[string]any), "templateRef", "name")
		if name == "" {
			continue
		}
		ns, _, _ := unstructured.NestedString(m.(map[string]any), "templateRef", "namespace")
		if ns == "" {
			ns = u.GetNamespace()
		}
		createNamespace(ns)
		t := &flaggerv1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: flaggerv1.MetricTemplateSpec{Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: "http://prometheus.istio-system:9090"}, Query: "vector(1)"}}
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, t))).To(Succeed())
	}
}

var _ = Describe("The Canary webhook", func() {
	It("accepts every corpus manifest whose provider Herald supports and refuses the others by name", func(ctx SpecContext) {
		files, err := filepath.Glob("../../../shared/compat/flagger-docs-canaries/*.yaml")
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(21))
		accepted, refused := 0, 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed())
			// A namespace of its own: other specs create a real podinfo Canary in "test".
			u.SetNamespace("corpus")
			createNamespace(u.GetNamespace())
			createReferencedTemplates(ctx, u)
			provider, _, _ := unstructured.NestedString(u.Object, "spec", "provider")
			scaler, _, _ := unstructured.NestedString(u.Object, "spec", "autoscalerRef", "kind")
			err = k8s.Create(ctx, u, client.DryRunAll)
			switch {
			case scaler == "ScaledObject":
				// Refused by name rather than silently ignored: Herald copies HPAs only.
				Expect(err).To(HaveOccurred(), "%s (KEDA ScaledObject) must be refused", filepath.Base(f))
				Expect(err.Error()).To(ContainSubstring("KEDA"))
				Expect(err.Error()).To(ContainSubstring("spec.autoscalerRef.kind"))
				refused++
			case provider == "", provider == "istio", provider == "kubernetes", strings.HasPrefix(provider, "gatewayapi"):
				Expect(err).NotTo(HaveOccurred(), "%s (provider %q) must be accepted", filepath.Base(f), provider)
				accepted++
			default:
				Expect(err).To(HaveOccurred(), "%s (provider %q) must be refused", filepath.Base(f), provider)
				Expect(err.Error()).To(ContainSubstring(`"` + provider + `"`))
				Expect(err.Error()).To(ContainSubstring("spec.provider"))
				refused++
			}
		}
		Expect(accepted).To(Equal(14), "12 without a provider (istio by default), 2 kubernetes")
		Expect(refused).To(Equal(7), "apisix, gloo, nginx (2), skipper, traefik, and a KEDA ScaledObject")
	})

	It("refuses an invalid Canary at kubectl apply time with every problem and its field path", func(ctx SpecContext) {
		createNamespace(hooksNS)
		manifest := `apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: broken
  namespace: hooks
spec:
  provider: nginx
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
    metrics:
      - name: my-custom-metric
        templateRef: {name: does-not-exist}
    webhooks:
      - name: load-test
        url: "not a url"
`
		f := filepath.Join(GinkgoT().TempDir(), "broken.yaml")
		Expect(os.WriteFile(f, []byte(manifest), 0o600)).To(Succeed())
		out, err := kubectl("apply", "-f", f)
		Expect(err).To(HaveOccurred())
		for _, path := range []string{"spec.provider", "spec.analysis.webhooks[0].url"} {
			Expect(out).To(ContainSubstring(path))
		}
		Expect(strings.Count(out, `The Canary "broken" is invalid`)).To(Equal(1), "one answer lists every problem:\n%s", out)
		Expect(strings.Count(out, "\n* spec.")).To(Equal(2), out)
		Expect(out).To(ContainSubstring("Warning: spec.targetRef.name"), "a missing target is only a warning")
		Expect(out).To(ContainSubstring("Warning: spec.analysis.metrics[0].templateRef: MetricTemplate hooks/does-not-exist does not exist yet"),
			"so is a missing MetricTemplate")
	})
})

var _ = Describe("Webhook certificate rotation", func() {
	It("drops no admission request while a new CA replaces the old one", func(ctx SpecContext) {
		createNamespace(hooksNS)
		servedCert := func() string {
			u, err := url.Parse(herald.WebhookURL)
			Expect(err).NotTo(HaveOccurred())
			conn, err := tls.Dial("tcp", "127.0.0.1:"+u.Port(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate only
			if err != nil {
				return ""
			}
			defer conn.Close()
			return fmt.Sprintf("%x", sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw))
		}
		before := servedCert()
		Expect(before).NotTo(BeEmpty())

		// Fail-closed admission requests, continuously, through the rotation.
		var sent, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var c flaggerv1.Canary
					sample("podinfo-canary.yaml", &c)
					c.Namespace, c.Name = hooksNS, fmt.Sprintf("rotation-%d-%d", w, i)
					err := k8s.Create(context.Background(), &c, client.DryRunAll)
					sent.Add(1)
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					time.Sleep(20 * time.Millisecond)
				}
			}(w)
		}
		time.Sleep(time.Second)

		// Emptying the Secret makes cert-controller issue a new CA and serving certificate.
		var secret corev1.Secret
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: "herald-system", Name: "herald-webhook-cert"}, &secret)).To(Succeed())
		secret.Data = nil
		Expect(k8s.Update(ctx, &secret)).To(Succeed())

		Eventually(servedCert).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).ShouldNot(Equal(before))
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		Expect(k8s.Get(ctx, types.NamespacedName{Name: webhooks.ValidatingName}, &cfg)).To(Succeed())
		Expect(strings.Count(string(cfg.Webhooks[0].ClientConfig.CABundle), "BEGIN CERTIFICATE")).To(Equal(2), "old and new CA trusted side by side")
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()

		Expect(sent.Load()).To(BeNumerically(">", 100))
		Expect(failed.Load()).To(BeZero(), "%d of %d requests failed; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	})
})
