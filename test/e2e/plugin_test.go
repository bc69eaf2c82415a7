package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/requests"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/test/traffic"
)

// pluginBinary is bin/kubectl-herald, built for the plugin specs.
var pluginBinary string

// plugin runs the built kubectl-herald against the test cluster in the ctrl namespace, as a
// user would (kubectl's --kubeconfig flag), and returns its stdout, stderr and exit code.
func plugin(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pluginBinary, append([]string{"--kubeconfig", env.Kubeconfig, "-n", ctrlNS}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		Fail("running kubectl-herald: " + err.Error())
	}
	return out.String(), errOut.String(), code
}

// startPlugin starts kubectl-herald in the background; the channel gets its exit code.
func startPlugin(args ...string) (<-chan int, *bytes.Buffer) {
	cmd := exec.Command(pluginBinary, append([]string{"--kubeconfig", env.Kubeconfig, "-n", ctrlNS}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	Expect(cmd.Start()).To(Succeed())
	done := make(chan int, 1)
	go func() {
		_ = cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	DeferCleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return done, &out
}

// pluginCanary is an istio Canary stepping 10 up to 50 every interval; metrics nil means the
// builtin success rate and latency.
func pluginCanary(name, interval string, metrics []flaggerv1.CanaryMetric) *flaggerv1.Canary {
	if metrics == nil {
		metrics = []flaggerv1.CanaryMetric{
			{Name: "request-success-rate", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(99.0)}},
			{Name: "request-duration", Interval: "30s", ThresholdRange: &flaggerv1.CanaryThresholdRange{Max: ptr.To(500.0)}},
		}
	}
	return &flaggerv1.Canary{
		TypeMeta:   metav1.TypeMeta{APIVersion: flaggerv1.GroupVersion.String(), Kind: flaggerv1.CanaryKind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS},
		Spec: flaggerv1.CanarySpec{
			Provider:  "istio",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898, Hosts: []string{name + ".example.com"}},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: interval, Threshold: 2, StepWeight: 10, MaxWeight: 50, Metrics: metrics},
		},
	}
}

// canaryWeight is the canary's weight in its VirtualService.
func canaryWeight(ctx context.Context, name string) func() int32 {
	return func() int32 { return splitOf(virtualService(ctx, name), name).Canary }
}

// asUnstructured is a typed object as the manifest a GitOps tool applies.
func asUnstructured(obj runtime.Object) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u
}

// fluxCleanup is the clean-up Flux's kustomize-controller (v1.9.6) asks of every apply: the
// fields of managers whose names start with "kubectl" (kubectl edit, annotate, client-side
// apply) and "before-first-apply" become Flux's, so its apply removes what it does not carry.
var fluxCleanup = ssa.ApplyCleanupOptions{
	Annotations: []string{corev1.LastAppliedConfigAnnotation},
	FieldManagers: []ssa.FieldManager{
		{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
		{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
		{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
		{Name: "kustomize-controller", OperationType: metav1.ManagedFieldsOperationUpdate},
	},
}

// gitopsApply applies manifest as Flux's kustomize-controller does.
func gitopsApply(ctx context.Context, manifest *unstructured.Unstructured) ssa.Action {
	flux := ssa.NewResourceManager(k8s, nil, ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"})
	opts := ssa.DefaultApplyOptions()
	opts.Cleanup = fluxCleanup
	entry, err := flux.Apply(ctx, manifest.DeepCopy(), opts)
	Expect(err).NotTo(HaveOccurred())
	return entry.Action
}

func lastRequest(ctx context.Context, name string) func() *flaggerv1.CanaryRequestStatus {
	return func() *flaggerv1.CanaryRequestStatus { return getCanary(ctx, name).Status.LastRequest }
}

var _ = Describe("kubectl herald", Label("plugin"), Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		createNamespace(ctrlNS)
		var err error
		pluginBinary, err = harness.Build(ctx, "./cmd/kubectl-herald")
		Expect(err).NotTo(HaveOccurred())
	}, NodeTimeout(5*time.Minute))

	It("promote ends an Istio analysis at its current weight and promotes; status -w exits 0", func(ctx SpecContext) {
		app(ctx, "plug-promote")
		Expect(k8s.Create(ctx, pluginCanary("plug-promote", "10s", nil))).To(Succeed())
		initialized(ctx, "plug-promote")

		By("promote with nothing in progress is refused, and nothing is written")
		_, stderr, code := plugin("promote", "plug-promote")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("has no analysis in progress to promote (phase Initialized)"))
		Expect(getCanary(ctx, "plug-promote").Annotations).NotTo(HaveKey(requests.Annotation))

		rec := recordWeights(ctx, "plug-promote")
		behave(ctx, "plug-promote", 0, "20ms")
		Eventually(canaryWeight(ctx, "plug-promote")).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(int32(10)))
		release := getCanary(ctx, "plug-promote").Status.LastAppliedSpec

		By("get and status show the run as it stands")
		out, stderr, code := plugin("get")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(MatchRegexp(`(?m)^NAME\s+PHASE\s+WEIGHT\s+ITERATIONS\s+FAILED\s+REVISION\s+AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^plug-promote\s+Progressing\s+10/50\s+-\s+0/2\s+` + release[:12] + `\s+\d+s$`))
		out, stderr, code = plugin("status", "plug-promote")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(MatchRegexp(`VirtualService plug-promote\s+routes\s+primary 90%, canary 10%`))
		Expect(out).To(MatchRegexp(`Deployment plug-promote-primary\s+primary\s+2/2 ready`))
		Expect(out).To(ContainSubstring("Advance plug-promote.ctrl canary weight 10"))

		watch, watchOut := startPlugin("status", "plug-promote", "-w", "--timeout", "2m")
		out, stderr, code = plugin("promote", "plug-promote")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(ContainSubstring("canary.flagger.app/plug-promote promote Honoured: analysis ended at canary weight 10, promoting"))

		Eventually(watch).WithTimeout(90*time.Second).Should(Receive(Equal(0)), func() string { return watchOut.String() })
		c := getCanary(ctx, "plug-promote")
		Expect(c.Status.Phase).To(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(c.Status.LastPromotedSpec).To(Equal(release))
		Expect(c.Status.LastRequest).To(HaveField("Outcome", flaggerv1.RequestHonoured))
		Eventually(rec.seen).WithTimeout(5*time.Second).Should(Equal([]int32{0, 10, 0}), "the weight stayed at 10 until the promotion, then went back to the primary")
		Expect(deploymentIn(ctx, "plug-promote-primary").Spec.Template.Annotations).To(HaveKeyWithValue(traffic.ErrorRateAnnotation, "0"))
		Expect(watchOut.String()).To(ContainSubstring("Succeeded"))

		By("the request is not acted on again: the annotation stays, and abort of a Succeeded Canary is refused")
		Expect(getCanary(ctx, "plug-promote").Annotations).To(HaveKey(requests.Annotation))
		_, stderr, code = plugin("abort", "plug-promote")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("has no analysis in progress to abort (phase Succeeded)"))
	})

	It("abort rolls back within one interval, status -w exits 1, retry re-runs the failed revision", func(ctx SpecContext) {
		app(ctx, "plug-abort")
		Expect(k8s.Create(ctx, pluginCanary("plug-abort", "10s", nil))).To(Succeed())
		initialized(ctx, "plug-abort")
		behave(ctx, "plug-abort", 0, "20ms")
		Eventually(canaryWeight(ctx, "plug-abort")).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(int32(10)))
		failed := getCanary(ctx, "plug-abort").Status.LastAppliedSpec

		watch, watchOut := startPlugin("status", "plug-abort", "-w", "--timeout", "2m")
		start := time.Now()
		out, stderr, code := plugin("abort", "plug-abort")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(ContainSubstring("abort Honoured: rolled back"))
		Eventually(phaseOf(ctx, "plug-abort")).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(flaggerv1.CanaryPhaseFailed))
		Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second), "rolled back within one interval")
		Expect(splitOf(virtualService(ctx, "plug-abort"), "plug-abort")).To(Equal(split{Primary: 100, Canary: 0}))
		Eventually(func() *int32 { return deploymentIn(ctx, "plug-abort").Spec.Replicas }).Should(HaveValue(BeEquivalentTo(0)))
		Eventually(watch).WithTimeout(30*time.Second).Should(Receive(Equal(1)), func() string { return watchOut.String() })
		Expect(watchOut.String()).To(ContainSubstring("aborted by"))

		By("a failed revision stays failed until retried; retry does not touch the target's template")
		generation := deploymentIn(ctx, "plug-abort").Generation
		Consistently(phaseOf(ctx, "plug-abort")).WithTimeout(3 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		out, stderr, code = plugin("retry", "plug-abort")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(ContainSubstring("retry Honoured: analysis restarted"))
		c := getCanary(ctx, "plug-abort")
		Expect(c.Status.Phase).To(Equal(flaggerv1.CanaryPhaseProgressing))
		Expect(c.Status.LastAppliedSpec).To(Equal(failed), "the same revision is analysed again")
		Eventually(canaryWeight(ctx, "plug-abort")).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(int32(10)))
		d := deploymentIn(ctx, "plug-abort")
		Expect(d.Spec.Replicas).To(HaveValue(BeNumerically(">", 0)))
		Expect(d.Generation).To(Equal(generation+1), "only the replicas changed")

		By("a second retry is refused: the revision is not Failed any more")
		_, stderr, code = plugin("retry", "plug-abort")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("has no failed revision to retry (phase Progressing)"))
		_, stderr, code = plugin("abort", "plug-abort")
		Expect(code).To(Equal(0), stderr)
	})

	It("pause holds the analysis until resume, and a GitOps re-apply of the Canary does not undo a request", func(ctx SpecContext) {
		app(ctx, "plug-pause")
		// The Canary is a GitOps tool's: Flux's apply engine creates it.
		manifest := asUnstructured(pluginCanary("plug-pause", "5s", []flaggerv1.CanaryMetric{}))
		Expect(gitopsApply(ctx, manifest)).To(Equal(ssa.CreatedAction))
		initialized(ctx, "plug-pause")
		behave(ctx, "plug-pause", 0, "20ms")
		Eventually(canaryWeight(ctx, "plug-pause")).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(int32(10)))

		out, stderr, code := plugin("pause", "plug-pause", "--wait=false")
		Expect(code).To(Equal(0), stderr)
		By("Flux re-applies the Canary at once, then kubectl apply does")
		for range 3 {
			Expect(gitopsApply(ctx, manifest)).To(BeElementOf(ssa.UnchangedAction, ssa.ConfiguredAction))
		}
		file := writeManifest(manifest)
		kout, err := kubectl("apply", "-f", file)
		Expect(err).NotTo(HaveOccurred(), kout)
		c := getCanary(ctx, "plug-pause")
		Expect(c.Annotations).To(HaveKey(requests.Annotation), "the re-applies removed the request")
		r, err := requests.Parse(c.Annotations[requests.Annotation])
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring(r.ID))
		owners := map[string]bool{}
		for _, m := range c.ManagedFields {
			if strings.Contains(m.FieldsV1.GetRawString(), requests.Annotation) {
				owners[m.Manager] = true
			}
		}
		Expect(owners).To(Equal(map[string]bool{requests.FieldManager: true}), "the request is the plugin's alone")
		Eventually(lastRequest(ctx, "plug-pause")).WithTimeout(10 * time.Second).Should(And(HaveField("ID", r.ID), HaveField("Outcome", flaggerv1.RequestHonoured)))

		By("no step while paused, over more than two intervals; get shows it")
		Consistently(canaryWeight(ctx, "plug-pause")).WithTimeout(12 * time.Second).WithPolling(500 * time.Millisecond).Should(Equal(int32(10)))
		Expect(eventsFor(ctx, "plug-pause")).NotTo(ContainElement(ContainSubstring("canary weight 20")))
		out, _, _ = plugin("get", "plug-pause")
		Expect(out).To(ContainSubstring("Progressing (paused)"))
		_, stderr, code = plugin("pause", "plug-pause")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("is already paused"))

		By("a later re-apply (which takes kubectl apply's fields over) keeps the analysis paused")
		Expect(gitopsApply(ctx, manifest)).To(BeElementOf(ssa.UnchangedAction, ssa.ConfiguredAction))
		Consistently(canaryWeight(ctx, "plug-pause")).WithTimeout(6 * time.Second).WithPolling(500 * time.Millisecond).Should(Equal(int32(10)))

		By("resume: the step that was due runs at once")
		out, stderr, code = plugin("resume", "plug-pause")
		Expect(code).To(Equal(0), stderr)
		Expect(out).To(ContainSubstring("resume Honoured"))
		Eventually(canaryWeight(ctx, "plug-pause")).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(int32(20)))
		Expect(getCanary(ctx, "plug-pause").Status.Paused).To(BeNil())

		By("for contrast: a field manager named kubectl-... would lose its annotation to Flux's clean-up")
		demo := asUnstructured(pluginCanary("plug-pause", "5s", []flaggerv1.CanaryMetric{}))
		demo.Object = map[string]any{"apiVersion": demo.GetAPIVersion(), "kind": demo.GetKind(),
			"metadata": map[string]any{"name": "plug-pause", "namespace": ctrlNS, "annotations": map[string]any{"example.com/note": "x"}}}
		Expect(k8s.Patch(ctx, demo, client.Apply, client.FieldOwner("kubectl-herald"), client.ForceOwnership)).To(Succeed())
		gitopsApply(ctx, manifest)
		Expect(getCanary(ctx, "plug-pause").Annotations).NotTo(HaveKey("example.com/note"))
		Expect(getCanary(ctx, "plug-pause").Annotations).To(HaveKey(requests.Annotation))

		_, stderr, code = plugin("abort", "plug-pause")
		Expect(code).To(Equal(0), stderr)
	})

	It("version reports the plugin and the controller's Deployment", func(ctx SpecContext) {
		createNamespace("herald-system")
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "herald", Namespace: "herald-system",
				Labels: map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/version": "0.9.0"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(int32(2)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "herald"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "ghcr.io/herald-rollouts/herald:v0.9.1"}}},
				},
			},
		}
		Expect(k8s.Create(ctx, d)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8s.Delete(ctx, d) })
		Eventually(func() string { out, _, _ := plugin("version"); return out }).WithTimeout(30 * time.Second).
			Should(MatchRegexp(`Controller: v0\.9\.1 \(Deployment herald-system/herald, image ghcr\.io/herald-rollouts/herald:v0\.9\.1, 2/2 ready\)`))
		out, _, code := plugin("version", "--client")
		Expect(code).To(Equal(0))
		Expect(out).To(HavePrefix("Plugin:     kubectl-herald "))
		Expect(out).NotTo(ContainSubstring("Controller"))
	})
})
