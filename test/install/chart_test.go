package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-rollouts/herald/config"
	"github.com/herald-rollouts/herald/internal/helmchart"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/webhooks"
)

// valueSet is one way to install the chart.
type valueSet struct {
	name    string
	release helmchart.Release
	values  map[string]any
	// needsMonitoringCRDs: the set renders Prometheus Operator objects.
	needsMonitoringCRDs bool
}

// valueSets are the default values and three others that turn on every optional part.
var valueSets = []valueSet{
	{name: "defaults", release: helmchart.Release{Name: "herald", Namespace: "herald-system"}},
	{
		name:    "Flagger's settings",
		release: helmchart.Release{Name: "delivery", Namespace: "progressive"},
		values: map[string]any{
			"meshProvider":        "kubernetes",
			"metricsServer":       "http://prometheus.monitoring:9090",
			"selectorLabels":      "app,app.kubernetes.io/name",
			"includeLabelPrefix":  "app.kubernetes.io,team",
			"clusterName":         "prod-eu-1",
			"namespace":           "apps",
			"watchLabelSelector":  "!sharding.herald.dev/key",
			"configTracking":      map[string]any{"enabled": false},
			"logLevel":            "debug",
			"slack":               map[string]any{"user": "herald", "channel": "releases", "url": "https://hooks.slack.invalid/T/B/x", "token": "xoxb-test", "proxyUrl": "http://proxy.invalid:3128"},
			"msteams":             map[string]any{"url": "https://teams.invalid/webhook", "proxyUrl": "http://proxy.invalid:3128"},
			"leaderElection":      map[string]any{"enabled": true, "replicaCount": 3},
			"podDisruptionBudget": map[string]any{"minAvailable": 2},
			"env":                 []any{map[string]any{"name": "GOMEMLIMIT", "value": "400MiB"}},
			"extraArgs":           []any{"--pprof-bind-address=127.0.0.1:6060"},
			"podAnnotations":      map[string]any{"team": "delivery"},
			"podLabels":           map[string]any{"team": "delivery"},
			"nodeSelector":        map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":         []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}},
		},
	},
	{
		name:                "monitoring and network policy",
		release:             helmchart.Release{Name: "herald", Namespace: "observed"},
		needsMonitoringCRDs: true,
		values: map[string]any{
			"fullnameOverride": "hrld",
			"alertsSecret":     "chat-webhooks",
			"podMonitor":       map[string]any{"enabled": true, "interval": "30s", "additionalLabels": map[string]any{"release": "prometheus"}},
			"serviceMonitor":   map[string]any{"enabled": true, "additionalLabels": map[string]any{"release": "prometheus"}},
			"networkPolicy": map[string]any{"enabled": true, "metricsFrom": []any{
				map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}},
			}},
		},
	},
	{
		name:    "one replica, existing ServiceAccount",
		release: helmchart.Release{Name: "solo", Namespace: "solo-system"},
		values: map[string]any{
			"leaderElection":    map[string]any{"enabled": false},
			"serviceAccount":    map[string]any{"create": false, "name": "herald-sa"},
			"image":             map[string]any{"repository": "registry.invalid/herald", "tag": "1.2.3", "pullPolicy": "Always"},
			"imagePullSecrets":  []any{map[string]any{"name": "registry"}},
			"resources":         map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"memory": "256Mi"}},
			"affinity":          map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64", "arm64"}}}}}}}},
			"webhook":           map[string]any{"port": 10443},
			"meshProvider":      "istio",
			"priorityClassName": "system-cluster-critical",
			"initialization":    map[string]any{"rate": 0.5, "burst": 1e6}, // a float, as YAML's numbers reach the chart
		},
	},
}

// objectsByKind indexes rendered objects as "Kind/name".
func objectsByKind(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

func managerArgs(objs []*unstructured.Unstructured) []string {
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		Expect(containers).To(HaveLen(1))
		args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		return args
	}
	Fail("the chart renders no Deployment")
	return nil
}

// warnings collects the API server's warnings (Pod Security among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

var _ = Describe("The Helm chart", Label("chart"), Ordered, func() {
	var (
		warned *warnings
		dryRun client.Client
	)

	BeforeAll(func() {
		warned = &warnings{}
		cfg := rest.CopyConfig(env.Config)
		cfg.WarningHandlerWithContext = warned
		var err error
		dryRun, err = client.New(cfg, client.Options{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("passes helm lint --strict for every value set", func() {
		for _, vs := range valueSets {
			msgs, failed := lint(chartDir(), vs.release.Namespace, vs.values)
			AddReportEntry("helm lint ("+vs.name+")", strings.Join(msgs, "\n"))
			Expect(failed).To(BeFalse(), "%s:\n%s", vs.name, strings.Join(msgs, "\n"))
			for _, m := range msgs {
				// Only the chart-wide recommendation of an icon is left: Herald has no logo.
				Expect(m).To(ContainSubstring("icon is recommended"), vs.name)
			}
		}
	})

	It("refuses values outside its schema with the key's path", func() {
		_, err := helmchart.Render(chartDir(), valueSets[0].release, map[string]any{"prometheus": map[string]any{"install": true}})
		Expect(err).To(MatchError(ContainSubstring("prometheus")))
		_, err = helmchart.Render(chartDir(), valueSets[0].release, map[string]any{"meshProvider": "nginx"})
		Expect(err).To(MatchError(ContainSubstring("meshProvider")))
		_, err = helmchart.Render(chartDir(), valueSets[0].release, map[string]any{"leaderElection": map[string]any{"replicaCount": 0}})
		Expect(err).To(MatchError(ContainSubstring("replicaCount")))
		for _, rate := range []any{-1, 0.001, "5"} {
			_, err = helmchart.Render(chartDir(), valueSets[0].release, map[string]any{"initialization": map[string]any{"rate": rate}})
			Expect(err).To(MatchError(ContainSubstring("rate")), "initialization.rate %v", rate)
		}
		for _, rate := range []any{0, 0.0, 1.0 / 60, 5} { // 0 (no pacing), or one a minute and more
			_, err = helmchart.Render(chartDir(), valueSets[0].release, map[string]any{"initialization": map[string]any{"rate": rate}})
			Expect(err).NotTo(HaveOccurred(), "initialization.rate %v", rate)
		}
	})

	It("renders Flagger's settings as the manager's flags, and issue 13's flags only when set", func() {
		def, err := helmchart.Render(chartDir(), valueSets[0].release, valueSets[0].values)
		Expect(err).NotTo(HaveOccurred())
		args := managerArgs(def.Objects)
		Expect(args).To(ContainElements("--leader-elect", "--metrics-server=http://prometheus:9090",
			"--webhook-service=herald-webhook", "--webhook-secret=herald-webhook-cert",
			"--controller-username=system:serviceaccount:herald-system:herald", "--initialization-rate=5", "--initialization-burst=20"))
		for _, a := range args {
			Expect(a).NotTo(Or(HavePrefix("--include-label-prefix"), HavePrefix("--cluster-name"), HavePrefix("--mesh-provider"), HavePrefix("--slack"), HavePrefix("--watch-label-selector")))
		}
		objs := objectsByKind(def.Objects)
		Expect(objs).To(HaveKey("PodDisruptionBudget/herald"))
		Expect(objs).NotTo(HaveKey("Secret/herald-alerts"))
		replicas, _, _ := unstructured.NestedInt64(objs["Deployment/herald"].Object, "spec", "replicas")
		Expect(replicas).To(BeEquivalentTo(2))

		flagger, err := helmchart.Render(chartDir(), valueSets[1].release, valueSets[1].values)
		Expect(err).NotTo(HaveOccurred())
		Expect(managerArgs(flagger.Objects)).To(ContainElements("--mesh-provider=kubernetes", "--selector-labels=app,app.kubernetes.io/name",
			"--include-label-prefix=app.kubernetes.io,team", "--cluster-name=prod-eu-1", "--namespace=apps",
			"--enable-config-tracking=false", "--watch-label-selector=!sharding.herald.dev/key", "--log-level=debug", "--slack-user=herald", "--slack-channel=releases",
			"--slack-proxy-url=http://proxy.invalid:3128", "--msteams-proxy-url=http://proxy.invalid:3128",
			"--controller-username=system:serviceaccount:progressive:delivery-herald", "--pprof-bind-address=127.0.0.1:6060"))
		// Secret values travel in a Secret, never on the command line.
		Expect(strings.Join(managerArgs(flagger.Objects), " ")).NotTo(Or(ContainSubstring("hooks.slack.invalid"), ContainSubstring("xoxb-test")))
		objs = objectsByKind(flagger.Objects)
		Expect(objs).To(HaveKey("Secret/delivery-herald-alerts"))
		data, _, _ := unstructured.NestedStringMap(objs["Secret/delivery-herald-alerts"].Object, "stringData")
		Expect(data).To(Equal(map[string]string{"SLACK_URL": "https://hooks.slack.invalid/T/B/x", "SLACK_TOKEN": "xoxb-test", "MSTEAMS_URL": "https://teams.invalid/webhook"}))
		replicas, _, _ = unstructured.NestedInt64(objs["Deployment/delivery-herald"].Object, "spec", "replicas")
		Expect(replicas).To(BeEquivalentTo(3))

		solo, err := helmchart.Render(chartDir(), valueSets[3].release, valueSets[3].values)
		Expect(err).NotTo(HaveOccurred())
		Expect(managerArgs(solo.Objects)).NotTo(ContainElement("--leader-elect"))
		// A large burst is written as an integer, not as YAML's float (1e+06), which the flag refuses.
		Expect(managerArgs(solo.Objects)).To(ContainElements("--initialization-rate=0.5", "--initialization-burst=1000000"))
		objs = objectsByKind(solo.Objects)
		Expect(objs).NotTo(HaveKey("PodDisruptionBudget/solo-herald"), "a PDB of one replica would block every drain")
		Expect(objs).NotTo(HaveKey("ServiceAccount/herald-sa"))
		replicas, _, _ = unstructured.NestedInt64(objs["Deployment/solo-herald"].Object, "spec", "replicas")
		Expect(replicas).To(BeEquivalentTo(1))
	})

	It("comes from the same sources as config/default: the same objects with the default values", func() {
		def, err := helmchart.Render(chartDir(), valueSets[0].release, nil)
		Expect(err).NotTo(HaveOccurred())
		built, err := kubectl("kustomize", filepath.Join(root, "config", "default"))
		Expect(err).NotTo(HaveOccurred(), built)
		kustomized := map[string]map[string]any{}
		for _, doc := range strings.Split(built, "\n---\n") {
			var m map[string]any
			Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed())
			u := &unstructured.Unstructured{Object: m}
			kustomized[u.GetKind()+"/"+u.GetName()] = m
		}
		// Without metadata labels (Helm's own, and those of the generated kinds differ), and
		// through JSON, so that YAML's and Helm's number types compare.
		strip := func(m map[string]any) map[string]any {
			u := (&unstructured.Unstructured{Object: m}).DeepCopy()
			u.SetLabels(nil)
			b, err := json.Marshal(u.Object)
			Expect(err).NotTo(HaveOccurred())
			var out map[string]any
			Expect(json.Unmarshal(b, &out)).To(Succeed())
			return out
		}
		var helmKeys []string
		for key, o := range objectsByKind(def.All()) {
			helmKeys = append(helmKeys, key)
			Expect(kustomized).To(HaveKey(key))
			Expect(strip(kustomized[key])).To(Equal(strip(o.Object)), key)
		}
		// config/default adds only the Namespace, which Helm leaves to --create-namespace.
		var extra []string
		for key := range kustomized {
			if !contains(helmKeys, key) {
				extra = append(extra, key)
			}
		}
		Expect(extra).To(ConsistOf("Namespace/herald-system"))
	})

	It("is accepted by the API server, Pod Security restricted, for every value set (server-side dry-run)", func(ctx SpecContext) {
		crds, err := config.CRDObjects()
		Expect(err).NotTo(HaveOccurred())
		Expect(config.InstallCRDs(ctx, env.Config, crds)).To(Succeed())
		Expect(config.InstallCRDs(ctx, env.Config, crdsOf(ctx, monitoringAPI))).To(Succeed())

		// The collector sees Pod Security's warnings: a privileged pod template warns.
		createNamespace(ctx, "psa-probe")
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "probe", "namespace": "psa-probe"},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "probe"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "probe"}},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}},
				},
			},
		}}
		Expect(applyDryRun(ctx, dryRun, probe)).To(Succeed())
		Expect(warned.take()).To(ContainElement(ContainSubstring("restricted")))

		for _, vs := range valueSets {
			rendered, err := helmchart.Render(chartDir(), vs.release, vs.values)
			Expect(err).NotTo(HaveOccurred(), vs.name)
			createNamespace(ctx, vs.release.Namespace)
			var applied []string
			for _, o := range rendered.All() {
				Expect(applyDryRun(ctx, dryRun, o)).To(Succeed(), "%s: %s/%s", vs.name, o.GetKind(), o.GetName())
				applied = append(applied, o.GetKind())
			}
			Expect(warned.take()).To(BeEmpty(), vs.name)
			sort.Strings(applied)
			AddReportEntry("dry-run ("+vs.name+")", strings.Join(applied, " "))
			if vs.needsMonitoringCRDs {
				Expect(applied).To(ContainElements("PodMonitor", "ServiceMonitor", "NetworkPolicy"))
			}
		}
	})

	It("is removed with its webhook configurations by helm uninstall, and config/default by kubectl delete -k", func(ctx SpecContext) {
		mustBeGone := func() {
			for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
				name := webhooks.MutatingName
				if _, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok {
					name = webhooks.ValidatingName
				}
				Eventually(func() bool {
					return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: name}, obj))
				}).WithTimeout(30*time.Second).Should(BeTrue(), name)
			}
		}
		mustExist := func(owner string) {
			var m admissionregistrationv1.MutatingWebhookConfiguration
			Expect(k8s.Get(ctx, client.ObjectKey{Name: webhooks.MutatingName}, &m)).To(Succeed())
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			Expect(k8s.Get(ctx, client.ObjectKey{Name: webhooks.ValidatingName}, &v)).To(Succeed())
			Expect(v.Webhooks).NotTo(BeEmpty())
			Expect(v.Webhooks[0].ClientConfig.Service).NotTo(BeNil())
			Expect(v.Webhooks[0].ClientConfig.Service.Namespace).To(Equal(owner))
		}

		By("helm install, then helm uninstall (Helm's Go SDK)")
		cfg := helmConfig("helm-herald")
		install := action.NewInstall(cfg)
		install.ReleaseName, install.Namespace, install.CreateNamespace = "herald", "helm-herald", true
		install.WaitStrategy, install.Timeout = kube.HookOnlyStrategy, time.Minute
		chrt, err := helmchart.Load(chartDir())
		Expect(err).NotTo(HaveOccurred())
		_, err = install.RunWithContext(ctx, chrt, nil)
		Expect(err).NotTo(HaveOccurred())
		mustExist("helm-herald")

		By("helm upgrade keeps what Herald wrote: the injected caBundle and the certificate")
		// What Herald's certificate manager does at start-up, with updates of its own.
		var mutating admissionregistrationv1.MutatingWebhookConfiguration
		Expect(k8s.Get(ctx, client.ObjectKey{Name: webhooks.MutatingName}, &mutating)).To(Succeed())
		for i := range mutating.Webhooks {
			mutating.Webhooks[i].ClientConfig.CABundle = []byte("injected-ca")
		}
		Expect(k8s.Update(ctx, &mutating, client.FieldOwner("herald"))).To(Succeed())
		var cert corev1.Secret
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "helm-herald", Name: "herald-webhook-cert"}, &cert)).To(Succeed())
		cert.Data = map[string][]byte{"ca.crt": []byte("ca"), "tls.crt": []byte("crt"), "tls.key": []byte("key")}
		Expect(k8s.Update(ctx, &cert, client.FieldOwner("herald"))).To(Succeed())
		upgrade := action.NewUpgrade(cfg)
		upgrade.Namespace = "helm-herald"
		upgrade.WaitStrategy, upgrade.Timeout = kube.HookOnlyStrategy, time.Minute
		_, err = upgrade.RunWithContext(ctx, "herald", chrt, map[string]any{"logLevel": "debug"})
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Get(ctx, client.ObjectKey{Name: webhooks.MutatingName}, &mutating)).To(Succeed())
		for _, w := range mutating.Webhooks {
			Expect(string(w.ClientConfig.CABundle)).To(Equal("injected-ca"), w.Name)
		}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "helm-herald", Name: "herald-webhook-cert"}, &cert)).To(Succeed())
		Expect(cert.Data).To(HaveKeyWithValue("tls.crt", []byte("crt")))

		uninstall := action.NewUninstall(cfg)
		uninstall.WaitStrategy, uninstall.Timeout = kube.HookOnlyStrategy, time.Minute
		_, err = uninstall.Run("herald")
		Expect(err).NotTo(HaveOccurred())
		mustBeGone()
		var secret corev1.Secret
		Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: "helm-herald", Name: "herald-webhook-cert"}, &secret))).To(BeTrue())

		By("kubectl apply --server-side -k config/default, then kubectl delete -k config/default")
		out, err := kubectl("apply", "--server-side", "-k", filepath.Join(root, "config", "default"))
		Expect(err).NotTo(HaveOccurred(), out)
		mustExist("herald-system")
		out, err = kubectl("delete", "-k", filepath.Join(root, "config", "default"), "--wait=false")
		Expect(err).NotTo(HaveOccurred(), out)
		mustBeGone()
	}, SpecTimeout(4*time.Minute))
})

var _ = Describe("The README's Flux manifests", Label("chart", "docs"), func() {
	It("are accepted by Flux's CRDs, and the HelmRelease's values by the chart", func(ctx SpecContext) {
		readme, err := os.ReadFile(filepath.Join(root, "README.md"))
		Expect(err).NotTo(HaveOccurred())
		blocks, err := harness.MarkedBlocks(readme)
		Expect(err).NotTo(HaveOccurred())
		Expect(config.InstallCRDs(ctx, env.Config, crdsOf(ctx, fluxAPI))).To(Succeed())
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flux-system"}}
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, ns))).To(Succeed())
		kinds := map[string]int{}
		for _, name := range []string{"flux-helmrelease", "flux-kustomization"} {
			Expect(blocks).To(HaveKey(name))
			for _, doc := range strings.Split(blocks[name], "\n---\n") {
				u := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed(), name)
				Expect(applyDryRun(ctx, k8s, u)).To(Succeed(), "%s: %s/%s", name, u.GetKind(), u.GetName())
				kinds[u.GetKind()]++
				if u.GetKind() == "HelmRelease" {
					values, found, err := unstructured.NestedMap(u.Object, "spec", "values")
					Expect(err).NotTo(HaveOccurred())
					Expect(found).To(BeTrue())
					_, err = helmchart.Render(chartDir(), helmchart.Release{Name: "herald", Namespace: "herald-system"}, values)
					Expect(err).NotTo(HaveOccurred(), "the README's HelmRelease values")
				}
			}
		}
		Expect(kinds).To(Equal(map[string]int{"OCIRepository": 1, "HelmRelease": 1, "GitRepository": 1, "Kustomization": 1}))
	}, SpecTimeout(5*time.Minute))
})

// applyDryRun server-side-applies obj as a dry run with strict field validation: a field the
// API server does not know is an error, not silently dropped.
func applyDryRun(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	obj = obj.DeepCopy()
	return c.Patch(ctx, obj, client.Apply, client.DryRunAll, client.FieldOwner("herald-chart-test"), client.ForceOwnership,
		&client.PatchOptions{Raw: &metav1.PatchOptions{FieldValidation: "Strict"}})
}

// createNamespace creates a namespace that enforces and warns at Pod Security "restricted".
func createNamespace(ctx context.Context, name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, ns))).To(Succeed())
}

// helmConfig is Helm's action configuration for the test cluster, releases stored in Secrets.
func helmConfig(namespace string) *action.Configuration {
	kubeconfig := env.Kubeconfig
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &namespace
	cfg := action.NewConfiguration()
	Expect(cfg.Init(flags, namespace, "secret")).To(Succeed())
	return cfg
}

// lint runs `helm lint --strict` and returns its messages.
func lint(dir, namespace string, values map[string]any) (messages []string, failed bool) {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	res := l.Run([]string{dir}, values)
	for _, m := range res.Messages {
		messages = append(messages, m.Error())
	}
	for _, err := range res.Errors {
		messages = append(messages, "[ERROR] "+err.Error())
	}
	return messages, len(res.Errors) > 0 || action.HasWarningsOrErrors(res)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
