package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

// kubectl runs the control plane's own kubectl against the test cluster.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func createNamespace(name string) {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

func sample(name string, into client.Object) {
	root, err := cluster.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", name))
	Expect(err).NotTo(HaveOccurred())
	Expect(yaml.UnmarshalStrict(b, into)).To(Succeed())
}

func scrape(url string) string {
	resp, err := http.Get(url)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// wakeups is herald_canary_wakeups_total of source: the requests that source's watch queued.
func wakeups(source string) float64 {
	m, err := harness.ScrapeMetrics(herald.MetricsURL)
	Expect(err).NotTo(HaveOccurred())
	return m.SumBy("herald_canary_wakeups_total", "source", nil)[source]
}

var _ = Describe("The local control plane", func() {
	It("rolls a Deployment out to Ready on the kwok node", func(ctx SpecContext) {
		createNamespace("test")
		var deploy appsv1.Deployment
		sample("podinfo-deployment.yaml", &deploy)
		deploy.Name = "rollout"
		deploy.Spec.Replicas = ptr.To(int32(3))
		Expect(k8s.Create(ctx, &deploy)).To(Succeed())

		Eventually(func(g Gomega) {
			var got appsv1.Deployment
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&deploy), &got)).To(Succeed())
			g.Expect(got.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(got.Status.UpdatedReplicas).To(Equal(int32(3)))
			available := false
			for _, c := range got.Status.Conditions {
				if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
					available = true
				}
			}
			g.Expect(available).To(BeTrue(), "Available condition")
		}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

		var pods corev1.PodList
		Expect(k8s.List(ctx, &pods, client.InNamespace("test"), client.MatchingLabels{"app": "podinfo"})).To(Succeed())
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == env.Nodes[0] {
				running++
			}
		}
		Expect(running).To(BeNumerically(">=", 3), "pods Running on %s", env.Nodes[0])

		// A rolling update completes as well: the new ReplicaSet takes over.
		Eventually(func() error {
			var got appsv1.Deployment
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(&deploy), &got); err != nil {
				return err
			}
			got.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.0.1"
			return k8s.Update(ctx, &got)
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			var got appsv1.Deployment
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&deploy), &got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.UpdatedReplicas).To(Equal(int32(3)))
			g.Expect(got.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(got.Status.Replicas).To(Equal(int32(3)), "old pods gone")
		}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	})
})

var _ = Describe("Herald's manager", func() {
	It("installs its CRDs and serves Canaries with Flagger's printer columns", func(ctx SpecContext) {
		createNamespace("test")
		var canary flaggerv1.Canary
		sample("podinfo-canary.yaml", &canary)
		Expect(k8s.Create(ctx, &canary)).To(Succeed())

		out, err := kubectl("get", "canaries", "-n", "test")
		Expect(err).NotTo(HaveOccurred(), out)
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		Expect(header).To(Equal([]string{"NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"}))
		Expect(out).To(ContainSubstring("podinfo"))

		out, err = kubectl("get", "canaries", "-n", "test", "-o", "wide")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal([]string{"NAME", "STATUS", "WEIGHT", "SUSPENDED",
			"FAILEDCHECKS", "INTERVAL", "MIRROR", "STEPWEIGHT", "STEPWEIGHTS", "MAXWEIGHT", "LASTTRANSITIONTIME"}))
		Expect(out).To(MatchRegexp(`podinfo\s.*\s10s\s`))

		// `kubectl get all` lists Canaries too (category "all"), as with Flagger.
		out, err = kubectl("get", "all", "-n", "test")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("canary.flagger.app/podinfo"))
	})

	It("exports Flagger's metric names on /metrics", func() {
		Eventually(func(g Gomega) {
			body := scrape(herald.MetricsURL)
			g.Expect(body).To(MatchRegexp(`(?m)^flagger_info\{mesh_provider="istio",version="[^"]+"\} 1$`))
			g.Expect(body).To(MatchRegexp(`(?m)^flagger_canary_total\{namespace="test"\} [1-9]`))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	It("answers its health and readiness probes", func() {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(herald.ProbeURL + path)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusOK), path)
		}
	})

	It("ships install manifests (config/default) that the API server accepts", func(ctx SpecContext) {
		root, err := cluster.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		rendered, err := kubectl("kustomize", filepath.Join(root, "config", "default"))
		Expect(err).NotTo(HaveOccurred(), rendered)
		// This suite's Herald registered webhook configurations of the same names with a url
		// clientConfig; renamed, the shipped ones are checked on their own.
		rendered = strings.ReplaceAll(rendered, "name: herald-mutating", "name: herald-mutating-shipped")
		rendered = strings.ReplaceAll(rendered, "name: herald-validating", "name: herald-validating-shipped")
		file := filepath.Join(GinkgoT().TempDir(), "install.yaml")
		Expect(os.WriteFile(file, []byte(rendered), 0o600)).To(Succeed())
		out, err := kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", file)
		Expect(err).NotTo(HaveOccurred(), out)
		for _, obj := range []string{"deployment.apps/herald", "service/herald-webhook", "poddisruptionbudget.policy/herald",
			"clusterrole.rbac.authorization.k8s.io/herald-manager", "clusterrolebinding.rbac.authorization.k8s.io/herald-manager",
			"mutatingwebhookconfiguration.admissionregistration.k8s.io/herald-mutating-shipped",
			"validatingwebhookconfiguration.admissionregistration.k8s.io/herald-validating-shipped",
			"customresourcedefinition.apiextensions.k8s.io/canaries.flagger.app"} {
			Expect(out).To(ContainSubstring(obj))
		}
	})

	It("refuses bad flags with a clear message instead of starting", func(ctx SpecContext) {
		// A provider Herald does not route (linkerd) is accepted, as Flagger's manifests name
		// theirs, and logged; a value no flag can mean is refused.
		cmd := exec.CommandContext(ctx, heraldBinary, "--kubeconfig", env.Kubeconfig, "--mesh-provider", "linkerd", "--log-level", "loud")
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(cmd.ProcessState.ExitCode()).To(Equal(2), string(out))
		Expect(string(out)).To(ContainSubstring(`-log-level: unrecognized level: "loud"`))
		Expect(string(out)).NotTo(ContainSubstring(`linkerd`))
	})
})
