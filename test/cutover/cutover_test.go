package cutover

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/harness"
)

const (
	ns     = "cutover"
	image1 = "ghcr.io/stefanprodan/podinfo:6.0.0"
	image2 = "ghcr.io/stefanprodan/podinfo:6.0.1"
	image3 = "ghcr.io/stefanprodan/podinfo:6.0.2"
)

// The four targets, by Canary name (each Canary is named after its target).
var targets = []string{"web", "agent", "scaled", "mesh"}

var _ = Describe("Replacing a running Flagger", Ordered, Label("cutover"), func() {
	var (
		flagger     *harness.Process
		herald      *harness.Herald
		heraldLog   string
		primaryPods map[string][]types.UID
		generations map[string]int64
		hookCalls   int
	)
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			AddReportEntry("flagger log", readFile(logDir+"/flagger.log"))
			if heraldLog != "" {
				AddReportEntry("herald log", readFile(heraldLog))
			}
			out, _ := kubectl("-n", ns, "get", "canaries,deployments,daemonsets,hpa,pods,services,virtualservices", "-o", "wide")
			AddReportEntry("objects", out)
		}
	})
	AfterAll(func() {
		if flagger != nil {
			flagger.Stop()
		}
		herald.Stop()
	})

	It("lets Flagger 1.44 initialise and promote a Deployment with configs, a DaemonSet, an HPA target and an Istio canary", func(ctx SpecContext) {
		// --force-conflicts: when the suite started Herald before, its CRDs are in place, as when a
		// user goes back to Flagger.
		out, err := kubectl("apply", "--server-side", "--force-conflicts", "-f", flaggerCRDs)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		createTargets(ctx)
		port := freePort()
		flagger, err = harness.StartProcess(ctx, harness.ProcessOptions{
			Name: "flagger", Binary: flaggerBinary, Out: logFile("flagger.log"),
			Args: []string{"-kubeconfig=" + env.Kubeconfig, "-mesh-provider=kubernetes", "-log-level=info",
				"-metrics-server=http://127.0.0.1:1", "-port=" + strconv.Itoa(port), "-include-label-prefix=app.kubernetes.io"},
			ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port), StopGrace: 5 * time.Second,
		})
		Expect(err).NotTo(HaveOccurred())
		for _, name := range targets {
			Eventually(phase(ctx, name)).WithTimeout(3*time.Minute).WithPolling(2*time.Second).
				Should(Equal(flaggerv1.CanaryPhaseInitialized), "canary %s under Flagger", name)
		}
		for _, name := range targets {
			release(ctx, name, image2)
		}
		for _, name := range targets {
			Eventually(phase(ctx, name)).WithTimeout(5*time.Minute).WithPolling(2*time.Second).
				Should(Equal(flaggerv1.CanaryPhaseSucceeded), "canary %s under Flagger", name)
			Expect(primaryImage(ctx, name)).To(Equal(image2), "Flagger promoted %s", name)
		}
		Expect(hooks.total()).To(BeNumerically(">", 0), "Flagger called the hooks")
		flagger.Stop()
		flagger = nil
	}, SpecTimeout(12*time.Minute))

	It("starts Herald over Flagger's objects: no analysis, no hook call, no primary pod replaced, idle targets idle", func(ctx SpecContext) {
		primaryPods, generations = map[string][]types.UID{}, map[string]int64{}
		for _, name := range targets {
			primaryPods[name] = podUIDs(ctx, name+"-primary")
			Expect(primaryPods[name]).NotTo(BeEmpty(), "pods of %s-primary", name)
			generations[name] = primaryGeneration(ctx, name)
		}
		hookCalls = hooks.total()
		flaggerStatus := map[string]string{}
		for _, name := range targets {
			flaggerStatus[name] = getCanary(ctx, name).Status.LastAppliedSpec
			Expect(contract.IsRevision(flaggerStatus[name])).To(BeFalse(), "Flagger's hash for %s", name)
		}

		heraldLog = logDir + "/herald.log"
		startedAt := time.Now()
		var err error
		herald, err = harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, logFile("herald.log"),
			"--metrics-server=http://127.0.0.1:1", "-include-label-prefix=app.kubernetes.io")
		Expect(err).NotTo(HaveOccurred(), "herald log:\n%s", readFile(heraldLog))
		for _, name := range targets {
			Eventually(func() bool { return contract.IsRevision(getCanary(ctx, name).Status.LastAppliedSpec) }).
				WithTimeout(30*time.Second).Should(BeTrue(), "Herald records its revision for %s", name)
		}
		// Longer than the analysis interval (10 s): a started analysis would show.
		Consistently(func(g Gomega) {
			for _, name := range targets {
				c := getCanary(ctx, name)
				g.Expect(c.Status.Phase).To(Equal(flaggerv1.CanaryPhaseSucceeded), "phase of %s", name)
				g.Expect(c.Status.LastAppliedSpec).To(Equal(c.Status.LastPromotedSpec), "%s", name)
				g.Expect(targetIdle(ctx, name)).To(BeTrue(), "target %s idle", name)
			}
			g.Expect(hooks.total()).To(Equal(hookCalls), "hook calls: %s", describe(hooks.snapshot()))
		}).WithTimeout(25 * time.Second).WithPolling(time.Second).Should(Succeed())
		for _, name := range targets {
			Expect(podUIDs(ctx, name+"-primary")).To(Equal(primaryPods[name]), "pods of %s-primary", name)
			Expect(primaryGeneration(ctx, name)).To(Equal(generations[name]), "generation of %s-primary", name)
			primary := primaryObject(ctx, name)
			Expect(primary.GetLabels()).To(HaveKeyWithValue(contract.LabelPrimaryOf, name))
			Expect(primary.GetOwnerReferences()).To(BeEmpty(), "%s-primary no longer owned by the Canary", name)
		}
		// Flagger's copies, Services, autoscaler copy and routes were adopted, not recreated.
		kept := map[string]client.Object{
			"web-config-primary": &corev1.ConfigMap{}, "web-secret-primary": &corev1.Secret{},
			"scaled-primary": &autoscalingv2.HorizontalPodAutoscaler{},
			"mesh":           &istionetworking.VirtualService{}, "mesh-primary": &istionetworking.DestinationRule{},
		}
		for _, name := range targets {
			for _, svc := range []string{name, name + "-primary", name + "-canary"} {
				Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: svc}, &corev1.Service{})).To(Succeed())
				kept["service "+svc] = &corev1.Service{}
			}
		}
		for key, obj := range kept {
			name := strings.TrimPrefix(key, "service ")
			Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)).To(Succeed(), key)
			Expect(obj.GetCreationTimestamp().Time).To(BeTemporally("<", startedAt), "%s kept", key)
		}
		GinkgoWriter.Printf("cut-over: %d primaries' pods compared (%d pods), hook calls after the cut-over: %d\n",
			len(targets), countPods(primaryPods), hooks.total()-hookCalls)
	}, SpecTimeout(3*time.Minute))

	It("promotes the next release of each target under Herald", func(ctx SpecContext) {
		before := hooks.total()
		for _, name := range targets {
			release(ctx, name, image3)
		}
		for _, name := range targets {
			Eventually(func() string { return primaryImage(ctx, name) }).WithTimeout(4*time.Minute).WithPolling(2*time.Second).
				Should(Equal(image3), "Herald promotes %s", name)
			Eventually(phase(ctx, name)).WithTimeout(time.Minute).Should(Equal(flaggerv1.CanaryPhaseSucceeded), "%s", name)
		}
		Expect(hooks.total()).To(BeNumerically(">", before), "Herald calls the hooks of the new releases")
	}, SpecTimeout(6*time.Minute))

	It("accepts a Canary applied before its MetricTemplate and target (kubectl apply -f dir/, Helm's order): Stalled until they exist, then initialised", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "order"}})).To(Succeed())
		dir := GinkgoT().TempDir()
		// kubectl apply -f dir/ applies the files in alphabetical order: the Canary first.
		Expect(os.WriteFile(filepath.Join(dir, "canary.yaml"), []byte(orderCanary("dir-app")), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "deployment.yaml"), []byte(orderDeployment("dir-app")), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "metric-template.yaml"), []byte(orderTemplate("dir-app")), 0o644)).To(Succeed())
		out, err := kubectl("apply", "-n", "order", "-f", dir)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("MetricTemplate order/dir-app-errors does not exist yet"), "the admission warning names the template")
		// Helm installs the built-in kinds first, then custom kinds in file order: one
		// manifest with the Canary before its MetricTemplate.
		helm := filepath.Join(dir, "helm")
		Expect(os.Mkdir(helm, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(helm, "release.yaml"), []byte(orderDeployment("helm-app")+"---\n"+orderCanary("helm-app")+"---\n"+orderTemplate("helm-app")), 0o644)).To(Succeed())
		out, err = kubectl("apply", "-n", "order", "-f", filepath.Join(helm, "release.yaml"))
		Expect(err).NotTo(HaveOccurred(), out)
		for _, name := range []string{"dir-app", "helm-app"} {
			Eventually(func(g Gomega) {
				var c flaggerv1.Canary
				g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: "order", Name: name}, &c)).To(Succeed())
				g.Expect(c.Status.Phase).To(Equal(flaggerv1.CanaryPhaseInitialized))
				for _, cond := range c.Status.Conditions {
					g.Expect(cond.Type).NotTo(Equal(flaggerv1.StalledType), "%s: %s", cond.Reason, cond.Message)
				}
			}).WithTimeout(90*time.Second).WithPolling(time.Second).Should(Succeed(), "canary %s converges", name)
		}
	}, SpecTimeout(3*time.Minute))
})

func orderDeployment(name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: podinfod
        image: %[2]s
`, name, image1)
}

func orderCanary(name string) string {
	return fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: %[1]s
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: %[1]s
  service:
    port: 9898
  analysis:
    interval: 10s
    threshold: 2
    iterations: 1
    metrics:
    - name: errors
      interval: 1m
      templateRef:
        name: %[1]s-errors
      thresholdRange:
        max: 1
`, name)
}

func orderTemplate(name string) string {
	return fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: %s-errors
spec:
  provider:
    type: prometheus
    address: http://127.0.0.1:1
  query: vector(0)
`, name)
}

// createTargets makes the four targets and their Canaries, in the shape Flagger's docs use.
func createTargets(ctx SpecContext) {
	hook := func(t flaggerv1.HookType, name string) flaggerv1.CanaryWebhook {
		return flaggerv1.CanaryWebhook{Name: string(t), Type: t, URL: hooks.srv.URL + "/" + name + "/" + string(t), Timeout: "5s"}
	}
	hooksOf := func(name string) []flaggerv1.CanaryWebhook {
		return []flaggerv1.CanaryWebhook{
			hook(flaggerv1.ConfirmRolloutHook, name), hook(flaggerv1.PreRolloutHook, name),
			hook(flaggerv1.RolloutHook, name), hook(flaggerv1.PostRolloutHook, name),
		}
	}
	podSpec := func(name string) corev1.PodTemplateSpec {
		labels := map[string]string{"app": name, "app.kubernetes.io/name": name}
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "podinfod", Image: image1,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}}}}},
		}
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "cutover", "team": "web"}}
	}
	selector := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	}

	Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("web-config"), Data: map[string]string{"color": "blue"}})).To(Succeed())
	Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: meta("web-secret"), StringData: map[string]string{"token": "t0"}})).To(Succeed())
	web := podSpec("web")
	web.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}}
	web.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "token"}}}}
	for _, d := range []*appsv1.Deployment{
		{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector("web"), Template: web}},
		{ObjectMeta: meta("scaled"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector("scaled"), Template: podSpec("scaled")}},
		{ObjectMeta: meta("mesh"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector("mesh"), Template: podSpec("mesh")}},
	} {
		Expect(k8s.Create(ctx, d)).To(Succeed())
	}
	Expect(k8s.Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta("agent"), Spec: appsv1.DaemonSetSpec{Selector: selector("agent"), Template: podSpec("agent")}})).To(Succeed())
	Expect(k8s.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta("scaled"), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "scaled"},
		MinReplicas:    ptr.To[int32](2), MaxReplicas: 4,
	}})).To(Succeed())

	blueGreen := func(name, kind string) *flaggerv1.Canary {
		return &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: flaggerv1.CanarySpec{
				Provider:  flaggerv1.ProviderKubernetes,
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: kind, Name: name},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, Iterations: 1, Webhooks: hooksOf(name)},
			},
		}
	}
	scaled := blueGreen("scaled", "Deployment")
	scaled.Spec.AutoscalerRef = &flaggerv1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "scaled"}
	mesh := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns},
		Spec: flaggerv1.CanarySpec{
			Provider:  flaggerv1.ProviderIstio,
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "mesh"},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, StepWeight: 50, MaxWeight: 50, Webhooks: hooksOf("mesh")},
		},
	}
	for _, c := range []*flaggerv1.Canary{blueGreen("web", "Deployment"), blueGreen("agent", "DaemonSet"), scaled, mesh} {
		Expect(k8s.Create(ctx, c)).To(Succeed())
	}
}

func getCanary(ctx SpecContext, name string) *flaggerv1.Canary {
	var c flaggerv1.Canary
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &c)).To(Succeed())
	return &c
}

func phase(ctx SpecContext, name string) func() flaggerv1.CanaryPhase {
	return func() flaggerv1.CanaryPhase { return getCanary(ctx, name).Status.Phase }
}

func isDaemonSet(name string) bool { return name == "agent" }

// release sets the image of a target.
func release(ctx SpecContext, name, image string) {
	kind := "deployment"
	if isDaemonSet(name) {
		kind = "daemonset"
	}
	out, err := kubectl("-n", ns, "set", "image", kind+"/"+name, "podinfod="+image)
	Expect(err).NotTo(HaveOccurred(), out)
}

func primaryObject(ctx SpecContext, name string) client.Object {
	var obj client.Object = &appsv1.Deployment{}
	if isDaemonSet(name) {
		obj = &appsv1.DaemonSet{}
	}
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-primary"}, obj)).To(Succeed())
	return obj
}

func primaryImage(ctx SpecContext, name string) string {
	switch o := primaryObject(ctx, name).(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Spec.Containers[0].Image
	case *appsv1.DaemonSet:
		return o.Spec.Template.Spec.Containers[0].Image
	}
	return ""
}

func primaryGeneration(ctx SpecContext, name string) int64 {
	return primaryObject(ctx, name).GetGeneration()
}

// targetIdle reports whether a target runs no pods and is kept so: a Deployment at zero
// replicas, a DaemonSet with a scale-to-zero node selector (Flagger's or Herald's).
func targetIdle(ctx SpecContext, name string) bool {
	if isDaemonSet(name) {
		var ds appsv1.DaemonSet
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &ds)).To(Succeed())
		sel := ds.Spec.Template.Spec.NodeSelector
		return (sel[contract.FlaggerNodeSelectorScaleToZero] == "true" || sel[contract.NodeSelectorScaleToZero] == "true") &&
			len(podUIDs(ctx, name)) == 0
	}
	var d appsv1.Deployment
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d)).To(Succeed())
	return d.Spec.Replicas != nil && *d.Spec.Replicas == 0 && len(podUIDs(ctx, name)) == 0
}

// podUIDs lists the UIDs of the running pods labelled app=<app>, sorted.
func podUIDs(ctx SpecContext, app string) []types.UID {
	var pods corev1.PodList
	Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app})).To(Succeed())
	var out []types.UID
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.UID)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func countPods(m map[string][]types.UID) int {
	n := 0
	for _, uids := range m {
		n += len(uids)
	}
	return n
}
