package cutover

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/internal/helmchart"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

// flaggerCommandLines reads, from Flagger's module, the arguments its kustomize overlays give
// the flagger container, and those its Helm chart renders for its default values (the chart
// puts them in command, after ./flagger), by source.
func flaggerCommandLines(ctx SpecContext) map[string][]string {
	dir, err := cluster.FlaggerModuleDir(ctx)
	Expect(err).NotTo(HaveOccurred())
	out := map[string][]string{}
	overlays, err := filepath.Glob(filepath.Join(dir, "kustomize", "*", "patch.yaml"))
	Expect(err).NotTo(HaveOccurred())
	for _, patch := range overlays {
		f, err := os.Open(patch)
		Expect(err).NotTo(HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			var d appsv1.Deployment
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else {
				Expect(err).NotTo(HaveOccurred(), patch)
			}
			if d.Kind != "Deployment" || d.Name != "flagger" {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				if c.Name == "flagger" {
					out["kustomize/"+filepath.Base(filepath.Dir(patch))] = c.Args
				}
			}
		}
		f.Close()
	}
	rendered, err := helmchart.Render(filepath.Join(dir, "charts", "flagger"), helmchart.Release{Name: "flagger", Namespace: "flagger-system"}, nil)
	Expect(err).NotTo(HaveOccurred())
	for _, obj := range rendered.Objects {
		if obj.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d)).To(Succeed())
		cmd := d.Spec.Template.Spec.Containers[0].Command
		Expect(cmd).NotTo(BeEmpty())
		Expect(cmd[0]).To(Equal("./flagger"))
		out["charts/flagger (default values)"] = cmd[1:]
	}
	Expect(len(out)).To(BeNumerically(">=", 10), "kustomize overlays and the chart: %v", out)
	return out
}

var _ = Describe("Flagger's command lines", Label("cutover", "flagger-flags"), func() {
	It("start Herald: every flag of Flagger's kustomize overlays and Helm chart is accepted, the ignored ones are logged with why, /healthz answers on the metrics port", func(ctx SpecContext) {
		lines := flaggerCommandLines(ctx)
		sources := make([]string, 0, len(lines))
		for s := range lines {
			sources = append(sources, s)
		}
		slices.Sort(sources)
		for i, source := range sources {
			args := lines[source]
			By(fmt.Sprintf("%s: %s", source, strings.Join(args, " ")))
			logPath := filepath.Join(logDir, fmt.Sprintf("herald-flags-%d.log", i))
			extra := slices.Clone(args)
			port := 0
			if i == 0 {
				// Flagger's -port too: its probes' port.
				port = freePort()
				extra = append(extra, "-port="+strconv.Itoa(port))
			}
			h, err := harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, logFile(filepath.Base(logPath)), extra...)
			Expect(err).NotTo(HaveOccurred(), "%s: herald log:\n%s", source, readFile(logPath))
			// A failed expectation must not leave this Herald acting on the next specs.
			DeferCleanup(h.Stop)
			healthz := strings.TrimSuffix(h.MetricsURL, "/metrics") + "/healthz"
			if port != 0 {
				healthz = fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
			}
			resp, err := http.Get(healthz)
			Expect(err).NotTo(HaveOccurred(), "%s: %s", source, healthz)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusOK), "%s: %s", source, healthz)
			Expect(string(body)).To(Equal("OK"))
			h.Stop()
			log := readFile(logPath)
			for _, a := range args {
				if name, value, ok := strings.Cut(strings.TrimPrefix(a, "-"), "="); ok && slices.Contains([]string{"ingress-class", "ingress-annotations-prefix", "control-loop-interval", "kubeconfig-service-mesh"}, name) {
					Expect(log).To(ContainSubstring("Flagger flag ignored: -"+name+"="+value+" is ignored: "), "%s", source)
				}
			}
			// The next Herald (or Flagger) must not find webhooks pointing at this one.
			for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
				for _, name := range []string{"herald-mutating", "herald-validating"} {
					obj.SetName(name)
					Expect(client.IgnoreNotFound(k8s.Delete(ctx, obj))).To(Succeed())
				}
			}
			GinkgoWriter.Printf("%s: Herald started and answered %s\n", source, healthz)
		}
	}, SpecTimeout(10*time.Minute))
})
