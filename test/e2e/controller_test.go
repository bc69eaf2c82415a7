package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

// gateServer is a real HTTP hook endpoint on loopback: it answers 200 while open, 403 while
// closed, and records the payloads it receives.
type gateServer struct {
	*httptest.Server
	open     atomic.Bool
	mu       sync.Mutex
	payloads []map[string]any
}

func newGate(open bool) *gateServer {
	g := &gateServer{}
	g.open.Store(open)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		_ = json.NewDecoder(r.Body).Decode(&p)
		g.mu.Lock()
		g.payloads = append(g.payloads, p)
		g.mu.Unlock()
		if g.open.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Error(w, "gate closed", http.StatusForbidden)
	}))
	DeferCleanup(g.Close)
	return g
}

func (g *gateServer) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.payloads)
}

const ctrlNS = "ctrl"

// app creates a Deployment (podinfo, 2 replicas) named name in the controller namespace.
func app(ctx context.Context, name string, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	var d appsv1.Deployment
	sample("podinfo-deployment.yaml", &d)
	d.Name, d.Namespace = name, ctrlNS
	d.Labels = map[string]string{"app": name}
	d.Spec.Selector.MatchLabels = map[string]string{"app": name}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.MinReadySeconds = 0
	for _, m := range mutate {
		m(&d)
	}
	Expect(k8s.Create(ctx, &d)).To(Succeed())
	return &d
}

// blueGreen is a Canary on the kubernetes provider with the given iterations and hooks.
func blueGreen(ctx context.Context, name string, iterations int, hooks ...flaggerv1.CanaryWebhook) *flaggerv1.Canary {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctrlNS},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis: &flaggerv1.CanaryAnalysis{
				Interval: "10s", Threshold: 2, Iterations: iterations, Webhooks: hooks,
			},
		},
	}
	Expect(k8s.Create(ctx, c)).To(Succeed())
	return c
}

func hook(name string, t flaggerv1.HookType, url string) flaggerv1.CanaryWebhook {
	return flaggerv1.CanaryWebhook{Name: name, Type: t, URL: url, Timeout: "5s"}
}

func phaseOf(ctx context.Context, name string) func() flaggerv1.CanaryPhase {
	return func() flaggerv1.CanaryPhase {
		var c flaggerv1.Canary
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &c); err != nil {
			return ""
		}
		return c.Status.Phase
	}
}

func getCanary(ctx context.Context, name string) *flaggerv1.Canary {
	var c flaggerv1.Canary
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &c)).To(Succeed())
	return &c
}

func deploymentIn(ctx context.Context, name string) *appsv1.Deployment {
	var d appsv1.Deployment
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &d)).To(Succeed())
	return &d
}

// setImage is `kubectl set image`: a new revision of the target.
func setImage(ctx context.Context, name, image string) {
	out, err := kubectl("-n", ctrlNS, "set", "image", "deployment/"+name, "podinfod="+image)
	Expect(err).NotTo(HaveOccurred(), out)
}

// eventsFor returns the notes of the events recorded on a Canary.
func eventsFor(ctx context.Context, name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ctrlNS))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Canary" && e.Regarding.Name == name {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func initialized(ctx context.Context, name string) {
	Eventually(phaseOf(ctx, name)).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized))
}

const (
	image1 = "ghcr.io/stefanprodan/podinfo:6.0.0"
	image2 = "ghcr.io/stefanprodan/podinfo:6.0.1"
)

var _ = Describe("The Canary controller", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("initialises a target: primary, Services, target scaled to zero and idle", func(ctx SpecContext) {
		app(ctx, "init")
		blueGreen(ctx, "init", 1)
		initialized(ctx, "init")

		primary := deploymentIn(ctx, "init-primary")
		// Herald leaves a settled primary alone: no write-fight with the Deployment controller.
		Consistently(func() int64 { return deploymentIn(ctx, "init-primary").Generation }).
			WithTimeout(3 * time.Second).Should(Equal(primary.Generation))
		Expect(primary.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "init-primary"}))
		Expect(primary.Spec.Template.Spec.Containers[0].Image).To(Equal(image1))
		Expect(*primary.Spec.Replicas).To(Equal(int32(2)), "the primary takes the target's replicas")
		// The primary is not the Canary's (deleting the Canary must not take serving pods
		// away): it carries the Canary's name, and owns its own Services.
		Expect(metav1.GetControllerOf(primary)).To(BeNil())
		Expect(primary.Labels).To(HaveKeyWithValue(contract.LabelPrimaryOf, "init"))
		for _, name := range []string{"init-primary", "init-canary"} {
			var svc corev1.Service
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &svc)).To(Succeed())
			Expect(metav1.IsControlledBy(&svc, primary)).To(BeTrue(), name)
		}
		target := deploymentIn(ctx, "init")
		Expect(*target.Spec.Replicas).To(BeZero())
		Expect(target.Labels).To(HaveKeyWithValue(contract.LabelCanary, "init"))
		Expect(target.Annotations).To(HaveKeyWithValue(contract.AnnotationIdle, getCanary(ctx, "init").Status.LastAppliedSpec))
		for name, selector := range map[string]string{"init": "init-primary", "init-primary": "init-primary", "init-canary": "init"} {
			var svc corev1.Service
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: name}, &svc)).To(Succeed())
			Expect(svc.Spec.Selector).To(Equal(map[string]string{"app": selector}), name)
			Expect(svc.Spec.Ports[0].Port).To(Equal(int32(9898)))
			Expect(svc.Annotations).To(HaveKeyWithValue("kustomize.toolkit.fluxcd.io/reconcile", "disabled"))
		}
		c := getCanary(ctx, "init")
		Expect(c.Status.Conditions).To(ContainElement(And(
			HaveField("Type", flaggerv1.PromotedType), HaveField("Status", corev1.ConditionTrue), HaveField("Reason", "Initialized"))))
		Eventually(func() []string { return eventsFor(ctx, "init") }).Should(ContainElement("Initialization done! init." + ctrlNS))

		By("a status update of the idle target, which no pass reads, wakes no Canary")
		// herald_canary_wakeups_total counts the wakeups of every Canary, and those of earlier
		// specs may still be moving (CI once saw one in the window). So the probe is made up to
		// five times and one quiet window suffices; were the update let through, every probe
		// would wake this Canary and none would be quiet.
		// The initialisation's target patches woke the Canary: the series is there to read (a
		// missing one would read 0 and every window would look quiet).
		Expect(wakeups("target")).To(BeNumerically(">", 0), "herald_canary_wakeups_total{source=\"target\"} is missing")
		quiet := false
		for probe := 0; probe < 5 && !quiet; probe++ {
			last := -1.0
			Eventually(func() bool { // the target events before the probe have come through
				now := wakeups("target")
				settled := now == last
				last = now
				return settled
			}).WithPolling(time.Second).WithTimeout(30 * time.Second).Should(BeTrue())
			target = deploymentIn(ctx, "init")
			probed := target.DeepCopy()
			probed.Status.Conditions = append(probed.Status.Conditions, appsv1.DeploymentCondition{
				Type: appsv1.DeploymentConditionType(fmt.Sprintf("HeraldE2E%d", probe)), Status: corev1.ConditionTrue, Reason: "Probe"})
			Expect(k8s.Status().Patch(ctx, probed, client.MergeFrom(target))).To(Succeed())
			time.Sleep(3 * time.Second)
			quiet = wakeups("target") == last
		}
		Expect(quiet).To(BeTrue(), "every status update of the idle target woke a Canary")
	})

	It("promotes a new revision to Succeeded, and kubectl wait --for=condition=promoted returns", func(ctx SpecContext) {
		pre := newGate(true)
		post := newGate(true)
		app(ctx, "promote")
		blueGreen(ctx, "promote", 2, hook("smoke", flaggerv1.PreRolloutHook, pre.URL), hook("notify", flaggerv1.PostRolloutHook, post.URL))
		initialized(ctx, "promote")

		// A field of the primary someone else owns, which Herald's update sends back unchanged.
		const keep = "e2e.herald.dev/keep"
		primary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ctrlNS, Name: "promote-primary"}}
		Expect(k8s.Patch(ctx, primary, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":["`+keep+`"]}}`)), client.FieldOwner("e2e"))).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(k8s.Patch(ctx, primary, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))))).To(Succeed())
		})
		before := wakeups("target")
		setImage(ctx, "promote", image2)
		Eventually(phaseOf(ctx, "promote")).WithTimeout(5*time.Second).Should(Equal(flaggerv1.CanaryPhaseProgressing), "detected within a second or two of the apply")
		// The release came through the target's watch, and was counted as such.
		Expect(wakeups("target")).To(BeNumerically(">", before))
		out, err := kubectl("-n", ctrlNS, "wait", "canary/promote", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=90s")
		Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectl("-n", ctrlNS, "wait", "canary/promote", "--for=condition=promoted", "--timeout=10s")
		Expect(err).NotTo(HaveOccurred(), out)

		promoted := deploymentIn(ctx, "promote-primary")
		Expect(promoted.Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		// Herald updated the primary from its cached copy, which keeps no managed fields: the
		// update left the other managers' field ownership as it was.
		Expect(promoted.Finalizers).To(ContainElement(keep))
		Expect(promoted.ManagedFields).To(ContainElement(And(HaveField("Manager", "e2e"),
			HaveField("FieldsV1.Raw", WithTransform(func(b []byte) string { return string(b) }, ContainSubstring(keep))))),
			"the ownership of a field someone else set was lost when Herald updated the primary")
		Expect(*deploymentIn(ctx, "promote").Spec.Replicas).To(BeZero())
		c := getCanary(ctx, "promote")
		Expect(c.Status.LastPromotedSpec).To(Equal(c.Status.LastAppliedSpec))
		Expect(pre.calls()).To(Equal(1))
		Eventually(post.calls).Should(Equal(1))
		post.mu.Lock()
		Expect(post.payloads[0]).To(HaveKeyWithValue("name", "promote"))
		Expect(post.payloads[0]).To(HaveKeyWithValue("phase", "Succeeded"))
		post.mu.Unlock()
		Eventually(func() []string { return eventsFor(ctx, "promote") }).Should(ContainElements(
			"New revision detected! Scaling up promote."+ctrlNS,
			"Promotion completed! Scaling down promote."+ctrlNS,
		))
		// Every step happens once: no event is repeated (the API server would count it up).
		var list eventsv1.EventList
		Expect(k8s.List(ctx, &list, client.InNamespace(ctrlNS))).To(Succeed())
		for _, e := range list.Items {
			if e.Regarding.Name == "promote" && e.Regarding.Kind == "Canary" {
				Expect(e.DeprecatedCount).To(BeNumerically("<=", 1), "event repeated: %q", e.Note)
				if e.Series != nil {
					Expect(e.Series.Count).To(BeNumerically("<=", 1), "event repeated: %q", e.Note)
				}
			}
		}
		Expect(scrape(herald.MetricsURL)).To(MatchRegexp(`flagger_canary_successes_total\{analysis_status="completed",deployment_strategy="blue-green",name="promote",namespace="ctrl"\} 1`))
		// ... while most passes read their Canary from the cache, not the API server.
		Expect(scrape(herald.MetricsURL)).To(MatchRegexp(`herald_canary_reads_total\{source="cache"\} [1-9]`))
	})

	It("rolls back to Failed when a rollout hook keeps failing past the threshold", func(ctx SpecContext) {
		failing := newGate(false)
		app(ctx, "rollback")
		blueGreen(ctx, "rollback", 3, hook("acceptance", flaggerv1.RolloutHook, failing.URL))
		initialized(ctx, "rollback")

		setImage(ctx, "rollback", image2)
		Eventually(phaseOf(ctx, "rollback")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		c := getCanary(ctx, "rollback")
		// As in Flagger, a failed run keeps no counters; its condition says how many checks failed.
		Expect(c.Status.FailedChecks).To(BeZero())
		Expect(c.Status.Conditions).To(ContainElement(And(HaveField("Type", flaggerv1.PromotedType), HaveField("Status", corev1.ConditionFalse),
			HaveField("Message", ContainSubstring("failed checks threshold reached 2")))))
		Expect(*deploymentIn(ctx, "rollback").Spec.Replicas).To(BeZero(), "the canary is scaled to zero")
		Expect(deploymentIn(ctx, "rollback-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image1), "the primary keeps the old version")
		// Events are written asynchronously by the event broadcaster.
		Eventually(func() string { return strings.Join(eventsFor(ctx, "rollback"), "\n") }).Should(And(
			ContainSubstring("Canary failed! Scaling down rollback."+ctrlNS),
			ContainSubstring(`hook "acceptance"`), ContainSubstring("403 Forbidden")))
	})

	It("waits in Waiting at a closed confirm-rollout gate and proceeds once it opens", func(ctx SpecContext) {
		gate := newGate(false)
		app(ctx, "gated")
		blueGreen(ctx, "gated", 1, hook("approval", flaggerv1.ConfirmRolloutHook, gate.URL))
		initialized(ctx, "gated")

		setImage(ctx, "gated", image2)
		Eventually(phaseOf(ctx, "gated")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Consistently(phaseOf(ctx, "gated")).WithTimeout(3 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Expect(*deploymentIn(ctx, "gated").Spec.Replicas).To(BeZero(), "nothing starts while the gate is closed")

		gate.open.Store(true)
		Eventually(phaseOf(ctx, "gated")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "gated-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
	})

	It("promotes at once with skipAnalysis", func(ctx SpecContext) {
		app(ctx, "skip")
		blueGreen(ctx, "skip", 5)
		initialized(ctx, "skip")
		c := getCanary(ctx, "skip")
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.SkipAnalysis = true
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())

		start := time.Now()
		setImage(ctx, "skip", image2)
		Eventually(phaseOf(ctx, "skip")).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(time.Since(start)).To(BeNumerically("<", 20*time.Second), "no analysis interval was waited")
		Expect(deploymentIn(ctx, "skip-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
	})

	It("starts an analysis when a tracked ConfigMap changes and promotes it to the primary's copy", func(ctx SpecContext) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ctrlNS}, Data: map[string]string{"color": "blue"}}
		Expect(k8s.Create(ctx, cm)).To(Succeed())
		token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ctrlNS}, StringData: map[string]string{"token": "t0"}}
		Expect(k8s.Create(ctx, token)).To(Succeed())
		app(ctx, "configured", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "token"}}},
			}
		})
		blueGreen(ctx, "configured", 1)
		initialized(ctx, "configured")

		var copy corev1.ConfigMap
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "settings-primary"}, &copy)).To(Succeed())
		Expect(copy.Data).To(Equal(map[string]string{"color": "blue"}))
		primary := deploymentIn(ctx, "configured-primary")
		Expect(primary.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name).To(Equal("settings-primary"))
		Expect(primary.Spec.Template.Spec.Containers[0].EnvFrom[1].SecretRef.Name).To(Equal("token-primary"))
		var tokenCopy corev1.Secret
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "token-primary"}, &tokenCopy)).To(Succeed())
		Expect(tokenCopy.Data).To(HaveKeyWithValue("token", []byte("t0")))

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
		Expect(cm.Labels).To(HaveKeyWithValue(contract.LabelTracked, contract.TrackedValue))
		cm.Data["color"] = "green"
		Expect(k8s.Update(ctx, cm)).To(Succeed())
		Eventually(phaseOf(ctx, "configured")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseProgressing))
		Eventually(phaseOf(ctx, "configured")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "settings-primary"}, &copy)).To(Succeed())
		Expect(copy.Data).To(Equal(map[string]string{"color": "green"}))
		// Only the config changed, yet the primary rolled, so its pods read the new values.
		promoted := deploymentIn(ctx, "configured-primary")
		Expect(promoted.Generation).To(BeNumerically(">", primary.Generation))
		Expect(promoted.Spec.Template.Annotations).To(HaveKeyWithValue("herald.dev/promoted-revision", getCanary(ctx, "configured").Status.LastPromotedSpec))
	})

	It("manages a DaemonSet target", func(ctx SpecContext) {
		labels := map[string]string{"app": "agent"}
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ctrlNS, Labels: labels},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "podinfod", Image: image1}}},
				},
			},
		}
		Expect(k8s.Create(ctx, ds)).To(Succeed())
		c := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ctrlNS},
			Spec: flaggerv1.CanarySpec{
				Provider:  "kubernetes",
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent"},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, Iterations: 1},
			},
		}
		Expect(k8s.Create(ctx, c)).To(Succeed())
		initialized(ctx, "agent")
		// Emptying the target through a node selector is not a new revision.
		Consistently(phaseOf(ctx, "agent")).WithTimeout(3 * time.Second).Should(Equal(flaggerv1.CanaryPhaseInitialized))
		var target appsv1.DaemonSet
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ds), &target)).To(Succeed())
		Expect(target.Spec.Template.Spec.NodeSelector).To(HaveKeyWithValue("herald.dev/scale-to-zero", "true"))

		out, err := kubectl("-n", ctrlNS, "set", "image", "daemonset/agent", "podinfod="+image2)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(phaseOf(ctx, "agent")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		var primary appsv1.DaemonSet
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "agent-primary"}, &primary)).To(Succeed())
		Expect(primary.Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Expect(primary.Spec.Template.Spec.NodeSelector).NotTo(HaveKey("herald.dev/scale-to-zero"))
	})

	It("copies the target's HorizontalPodAutoscaler for the primary", func(ctx SpecContext) {
		app(ctx, "scaled")
		hpa := &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: ctrlNS},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "scaled"},
				MinReplicas:    ptr.To(int32(2)), MaxReplicas: 4,
			},
		}
		Expect(k8s.Create(ctx, hpa)).To(Succeed())
		c := blueGreen(ctx, "scaled", 1)
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.AutoscalerRef = &flaggerv1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "scaled"}
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		initialized(ctx, "scaled")
		var primaryHPA autoscalingv2.HorizontalPodAutoscaler
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "scaled-primary"}, &primaryHPA)).To(Succeed())
		Expect(primaryHPA.Spec.ScaleTargetRef.Name).To(Equal("scaled-primary"))
		Expect(primaryHPA.Spec.MaxReplicas).To(Equal(int32(4)))
	})

	It("resumes at the same iteration after the controller restarts mid-analysis, and promotes once", func(ctx SpecContext) {
		app(ctx, "resume")
		blueGreen(ctx, "resume", 3)
		initialized(ctx, "resume")
		setImage(ctx, "resume", image2)
		Eventually(func() int { return getCanary(ctx, "resume").Status.Iterations }).WithTimeout(30 * time.Second).Should(Equal(1))

		herald.Stop()
		stopped := getCanary(ctx, "resume")
		time.Sleep(2 * time.Second)
		startHerald(ctx)

		Consistently(func() int { return getCanary(ctx, "resume").Status.Iterations }).WithTimeout(3*time.Second).
			Should(BeNumerically(">=", stopped.Status.Iterations), "the restarted controller does not start over")
		Eventually(phaseOf(ctx, "resume")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		time.Sleep(2 * time.Second) // let the event broadcaster flush
		promotions := 0
		for _, note := range eventsFor(ctx, "resume") {
			if strings.HasPrefix(note, "Promotion completed!") {
				promotions++
			}
		}
		Expect(promotions).To(Equal(1))
	})

	It("restores the target when a Canary with revertOnDeletion is deleted", func(ctx SpecContext) {
		app(ctx, "revert")
		c := blueGreen(ctx, "revert", 1)
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.RevertOnDeletion = true
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		initialized(ctx, "revert")
		Expect(*deploymentIn(ctx, "revert").Spec.Replicas).To(BeZero())

		Expect(k8s.Delete(ctx, getCanary(ctx, "revert"))).To(Succeed())
		Eventually(func() bool {
			err := k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "revert"}, &flaggerv1.Canary{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		// The Canary goes at once (no finalizer); the releaser then gives the target back.
		Eventually(func(g Gomega) {
			target := deploymentIn(ctx, "revert")
			g.Expect(*target.Spec.Replicas).To(Equal(int32(2)))
			g.Expect(target.Labels).NotTo(HaveKey(contract.LabelCanary))
			g.Expect(target.Annotations).NotTo(HaveKey(contract.AnnotationIdle))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			var got appsv1.Deployment
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: "revert"}, &got)).To(Succeed())
			g.Expect(got.Status.ReadyReplicas).To(Equal(int32(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
})
