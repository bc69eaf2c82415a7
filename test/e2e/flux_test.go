package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/gitserver"
	"github.com/herald-rollouts/herald/test/traffic"
)

// The application Flux deploys: what a team keeps in Git for Herald.
const (
	fluxApp    = "fluxapp"
	fluxConfig = "fluxapp-config"
	fluxSync   = "apps" // the GitRepository and the Kustomization
)

var (
	gitRepositoryGVK = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "GitRepository"}
	kustomizationGVK = schema.GroupVersionKind{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization"}
)

// appVersion is what a commit says about the application.
type appVersion struct {
	image     string
	errorRate string // the simulator's error rate for the pods of this version
	message   string // the ConfigMap's data
}

// appManifests renders the repository's app/ directory for a version.
func appManifests(v appVersion) map[string]string {
	return map[string]string{
		"app/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - configmap.yaml
  - deployment.yaml
  - metrictemplate.yaml
  - canary.yaml
`,
		"app/configmap.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
  namespace: %s
data:
  MESSAGE: %q
`, fluxConfig, ctrlNS, v.message),
		// replicas: 2 stays in Git while Herald keeps the idle target at zero: the case
		// where a GitOps loop and a progressive-delivery controller could fight.
		"app/deployment.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
  labels:
    app: %[1]s
spec:
  replicas: 2
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
      annotations:
        %[3]s: %[4]q
        %[5]s: "20ms"
    spec:
      containers:
        - name: podinfod
          image: %[6]s
          ports:
            - name: http
              containerPort: 9898
          envFrom:
            - configMapRef:
                name: %[7]s
`, fluxApp, ctrlNS, traffic.ErrorRateAnnotation, v.errorRate, traffic.LatencyAnnotation, v.image, fluxConfig),
		"app/metrictemplate.yaml": fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: fluxapp-error-rate
  namespace: %s
spec:
  provider:
    type: prometheus
    address: %s
  query: |
    100 - sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",response_code!~"5.*"}[{{ interval }}]))
      / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}])) * 100
`, ctrlNS, env.PrometheusURL),
		// Five steps of 10% every 10 s, then promotion: longer than kustomize-controller's
		// shortest health-check timeout (30 s), so that Flux reconciles while it runs. Two
		// failed checks roll back.
		"app/canary.yaml": fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  provider: istio
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: %[1]s
  service:
    port: 9898
    hosts: [%[1]s.example.com]
    gateways: [public-gateway.istio-system.svc.cluster.local]
  analysis:
    interval: 10s
    threshold: 2
    stepWeight: 10
    maxWeight: 50
    metrics:
      - name: request-success-rate
        interval: 30s
        thresholdRange:
          min: 99
      - name: error-rate
        interval: 30s
        templateRef:
          name: fluxapp-error-rate
        thresholdRange:
          max: 1
`, fluxApp, ctrlNS),
	}
}

// fluxObject is a Flux object of the sync, as unstructured content.
func fluxObject(gvk schema.GroupVersionKind, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(cluster.FluxNamespace)
	u.SetName(fluxSync)
	return u
}

func getFlux(ctx context.Context, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: cluster.FluxNamespace, Name: fluxSync}, u)).To(Succeed())
	return u
}

// requestReconcile asks a Flux object to reconcile now, as `flux reconcile` does, and returns
// the token the object reports in status.lastHandledReconcileAt once it has.
func requestReconcile(ctx context.Context, gvk schema.GroupVersionKind) string {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(cluster.FluxNamespace)
	u.SetName(fluxSync)
	token := time.Now().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, token)
	Expect(k8s.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	return token
}

// reapply makes kustomize-controller apply the current revision again now, as its interval
// does, and waits until that reconciliation has finished (its health check included).
func reapply(ctx context.Context) {
	token := requestReconcile(ctx, kustomizationGVK)
	Eventually(func() string {
		v, _, _ := unstructured.NestedString(getFlux(ctx, kustomizationGVK).Object, "status", "lastHandledReconcileAt")
		return v
	}).WithTimeout(45*time.Second).WithPolling(250*time.Millisecond).Should(Equal(token), "kustomize-controller handles the reconcile request")
}

// fluxCondition is a condition of the Kustomization.
type fluxCondition struct {
	Status, Reason, Message string
}

func kustomizationCondition(ctx context.Context, typ string) fluxCondition {
	conds, _, _ := unstructured.NestedSlice(getFlux(ctx, kustomizationGVK).Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return fluxCondition{Status: s, Reason: r, Message: msg}
		}
	}
	return fluxCondition{}
}

func lastAppliedRevision(ctx context.Context) string {
	rev, _, _ := unstructured.NestedString(getFlux(ctx, kustomizationGVK).Object, "status", "lastAppliedRevision")
	return rev
}

// appliedChange matches one line of kustomize-controller's change-set event:
// "Deployment/ctrl/fluxapp configured".
var appliedChange = regexp.MustCompile(`^(\S+/\S+) (created|configured|deleted)$`)

// fluxChanges counts, per object and action ("Deployment/ctrl/fluxapp configured"), the
// changes kustomize-controller reported in its events on the Kustomization. It emits such
// an event only when a server-side apply changed something, so an apply that found drift
// (a replicas fight, an annotation put back) would show here as one more.
func fluxChanges(ctx context.Context) map[string]int {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(cluster.FluxNamespace))).To(Succeed())
	changes := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Kind != kustomizationGVK.Kind || e.Regarding.Name != fluxSync {
			continue
		}
		count := max(1, int(e.DeprecatedCount))
		if e.Series != nil {
			count = max(count, int(e.Series.Count))
		}
		for _, line := range strings.Split(e.Note, "\n") {
			if appliedChange.MatchString(strings.TrimSpace(line)) {
				changes[strings.TrimSpace(line)] += count
			}
		}
	}
	return changes
}

// fluxApply is one server-side apply of the Kustomization, from kustomize-controller's log.
type fluxApply struct {
	at      time.Time
	changed bool // some object was created, configured or deleted
}

// fluxApplies reads kustomize-controller's log: every server-side apply it made for the
// Kustomization, including the ones that found nothing to do, which emit no event.
func fluxApplies() []fluxApply {
	f, err := os.Open(env.LogFile(cluster.KustomizeController))
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var applies []fluxApply
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			TS     time.Time         `json:"ts"`
			Msg    string            `json:"msg"`
			Name   string            `json:"name"`
			Output map[string]string `json:"output"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "server-side apply completed" || line.Name != fluxSync {
			continue
		}
		a := fluxApply{at: line.TS}
		for _, action := range line.Output {
			a.changed = a.changed || action != "unchanged"
		}
		applies = append(applies, a)
	}
	return applies
}

func countChanged(applies []fluxApply) int {
	n := 0
	for _, a := range applies {
		if a.changed {
			n++
		}
	}
	return n
}

// readyRecorder polls the Kustomization's Ready condition and keeps every distinct one.
type readyRecorder struct {
	mu   sync.Mutex
	seen []fluxCondition
}

func recordReady(ctx context.Context) *readyRecorder {
	r := &readyRecorder{}
	ctx, cancel := context.WithCancel(ctx)
	DeferCleanup(cancel)
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(kustomizationGVK)
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: cluster.FluxNamespace, Name: fluxSync}, u); err == nil {
				conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
				for _, c := range conds {
					if m, _ := c.(map[string]any); m["type"] == "Ready" {
						fc := fluxCondition{Status: fmt.Sprint(m["status"]), Reason: fmt.Sprint(m["reason"]), Message: fmt.Sprint(m["message"])}
						r.mu.Lock()
						if n := len(r.seen); n == 0 || r.seen[n-1] != fc {
							r.seen = append(r.seen, fc)
						}
						r.mu.Unlock()
					}
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return r
}

func (r *readyRecorder) all() []fluxCondition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

var _ = Describe("Flux drives releases", Label("flux"), Ordered, func() {
	var (
		repo *gitserver.Repo
		// commits counts the commits that changed the application.
		commits int
		started time.Time
		// syncing: the GitRepository exists, so a commit can ask it to fetch at once.
		syncing bool
	)

	// commit writes a version of the application, pushes it and asks Flux to fetch it at
	// once instead of at its next interval; it returns the revision Flux will report.
	commit := func(ctx context.Context, v appVersion, message string) string {
		for path, content := range appManifests(v) {
			Expect(repo.WriteFile(path, []byte(content))).To(Succeed())
		}
		sha, err := repo.Commit(ctx, message)
		Expect(err).NotTo(HaveOccurred())
		commits++
		if syncing {
			requestReconcile(ctx, gitRepositoryGVK)
		}
		return "main@sha1:" + sha
	}
	// applied waits until the Kustomization applied a revision.
	applied := func(ctx context.Context, revision string) {
		Eventually(func() string { return lastAppliedRevision(ctx) }).WithTimeout(60*time.Second).WithPolling(250*time.Millisecond).
			Should(Equal(revision), "kustomize-controller applies the commit")
	}
	// detections is Herald's count of new revisions detected in the namespace
	// (herald_detection_latency_seconds_count): one per release. Its "New revision detected!"
	// events are no count: the events API folds repeats into a series whose count the
	// recorder writes back only every few minutes.
	detections := func() int {
		m := regexp.MustCompile(`(?m)^herald_detection_latency_seconds_count\{namespace="` + ctrlNS + `"\} (\d+)$`).FindStringSubmatch(scrape(herald.MetricsURL))
		if m == nil {
			return 0
		}
		n, err := strconv.Atoi(m[1])
		Expect(err).NotTo(HaveOccurred())
		return n
	}
	var detectedBefore int
	newRevisions := func(context.Context) int { return detections() - detectedBefore }

	ReportAfterEach(func(report SpecReport) {
		if report.Failed() {
			for _, ctrl := range cluster.FluxBinaries {
				AddReportEntry(ctrl+" log (end)", tail(readFile(env.LogFile(ctrl)), 60))
			}
			out, _ := kubectl("-n", cluster.FluxNamespace, "get", "gitrepositories,kustomizations", "-o", "yaml")
			AddReportEntry("Flux objects", out)
		}
	})

	BeforeAll(func(ctx SpecContext) {
		started = time.Now()
		createNamespace(ctrlNS)
		// Flux joins the suite's control plane here (built on first use, then cached), so
		// that runs of the other labels never build or start it.
		Expect(env.StartFlux(ctx)).To(Succeed())

		git, err := gitserver.Start(GinkgoT().TempDir(), gitserver.Options{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(git.Close)
		repo, err = git.Clone(ctx, "apps", filepath.Join(GinkgoT().TempDir(), "apps"))
		Expect(err).NotTo(HaveOccurred())
		first := commit(ctx, appVersion{image: image1, errorRate: "0", message: "hello"}, "podinfo under Herald")

		Expect(k8s.Create(ctx, fluxObject(gitRepositoryGVK, map[string]any{
			"url":      git.RepoURL("apps"),
			"interval": "10s",
			"ref":      map[string]any{"branch": "main"},
		}))).To(Succeed())
		syncing = true
		Expect(k8s.Create(ctx, fluxObject(kustomizationGVK, map[string]any{
			"sourceRef": map[string]any{"kind": "GitRepository", "name": fluxSync},
			"path":      "./app",
			"interval":  "10s",
			// The shortest health-check timeout Flux 1.9 takes (it raises shorter ones to
			// 30 s), shorter than a release here: the health check reports the running release
			// (the Canary InProgress) and Flux retries every 10 s while Herald runs it, which
			// is what this spec looks at (docs/flux.md suggests a timeout longer than the
			// analysis, for a Ready condition that waits for the release's outcome).
			"timeout":       "30s",
			"retryInterval": "10s",
			"prune":         true,
			"wait":          true,
		}))).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			// Pruning removes what the Kustomization applied; Herald's generated objects go
			// with the Canary.
			u := fluxObject(kustomizationGVK, nil)
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, u))).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(u), u))
			}).WithTimeout(60 * time.Second).Should(BeTrue())
			Eventually(func() bool {
				var c flaggerv1.Canary
				return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: fluxApp}, &c))
			}).WithTimeout(30*time.Second).Should(BeTrue(), "prune deletes the Canary")
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, fluxObject(gitRepositoryGVK, nil)))).To(Succeed())
		}, NodeTimeout(2*time.Minute))

		applied(ctx, first)
		initialized(ctx, fluxApp)
		detectedBefore = detections()
	}, NodeTimeout(25*time.Minute)) // a cold run builds Flux first

	It("promotes an image commit and a ConfigMap commit, rolls a bad commit back, and Flux finds no drift", func(ctx SpecContext) {
		specStart := time.Now()
		// duringRelease waits for one of Flux's own reconciliations while Herald runs the
		// canary: with wait: true, kustomize-controller holds each reconciliation in its health
		// check until the Canary is Current or the timeout (at least 30 s) passes, then retries
		// every 10 s; that re-apply meets a target that is scaled up, no longer idle, and
		// carries Herald's annotations of a run. It returns when the re-apply happened.
		duringRelease := func() time.Time {
			Eventually(phaseOf(ctx, fluxApp)).WithTimeout(15 * time.Second).WithPolling(200 * time.Millisecond).
				Should(Equal(flaggerv1.CanaryPhaseProgressing))
			before := len(fluxApplies())
			Eventually(func() int { return len(fluxApplies()) }).WithTimeout(90*time.Second).WithPolling(500*time.Millisecond).
				Should(BeNumerically(">", before), "Flux re-applies the commit at its retry interval")
			return fluxApplies()[before].at
		}
		// ranDuring checks that a re-apply happened before the release ended (the phase
		// change to Succeeded or Failed; status times have a resolution of one second).
		ranDuring := func(at time.Time) {
			ended := getCanary(ctx, fluxApp).Status.LastTransitionTime.Time
			Expect(at.Truncate(time.Second)).To(BeTemporally("<=", ended), "Flux re-applied while the release ran")
		}
		ready := recordReady(ctx)
		By("the first sync: Flux created the objects, Herald initialised them")
		Eventually(func() string { return kustomizationCondition(ctx, "Ready").Status }).WithTimeout(60 * time.Second).Should(Equal("True"))
		target := deploymentIn(ctx, fluxApp)
		Expect(*target.Spec.Replicas).To(BeZero(), "Herald keeps the idle target at zero although Git says 2")
		Expect(*deploymentIn(ctx, fluxApp+"-primary").Spec.Replicas).To(BeEquivalentTo(2), "the primary runs Git's replicas")
		Expect(target.Labels).To(HaveKeyWithValue("kustomize.toolkit.fluxcd.io/name", fluxSync))

		By("a commit that changes the image: Herald promotes it")
		rev := commit(ctx, appVersion{image: image2, errorRate: "0", message: "hello"}, "podinfo 6.0.1")
		Eventually(func() int { return newRevisions(ctx) }).WithTimeout(30 * time.Second).Should(Equal(1))
		reapplied := duringRelease()
		Eventually(func() string {
			return deploymentIn(ctx, fluxApp+"-primary").Spec.Template.Spec.Containers[0].Image
		}).WithTimeout(120*time.Second).WithPolling(time.Second).Should(Equal(image2), "the primary runs the new image")
		Eventually(phaseOf(ctx, fluxApp)).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		ranDuring(reapplied)
		applied(ctx, rev)
		Eventually(func() string { return kustomizationCondition(ctx, "Ready").Status }).WithTimeout(40*time.Second).
			Should(Equal("True"), "the Kustomization is healthy once the release is promoted")
		Expect(ready.all()).To(ContainElement(And(HaveField("Status", "False"), HaveField("Reason", "HealthCheckFailed"),
			HaveField("Message", ContainSubstring("timeout waiting for: [Canary/ctrl/"+fluxApp+" status: 'InProgress']")))),
			"while the release ran, Flux's health check saw the Canary in progress")

		By("a commit that changes only the ConfigMap: Herald promotes it too")
		rev = commit(ctx, appVersion{image: image2, errorRate: "0", message: "hello again"}, "a new message")
		Eventually(func() int { return newRevisions(ctx) }).WithTimeout(30 * time.Second).Should(Equal(2))
		reapplied = duringRelease()
		Eventually(func() string {
			var cm corev1.ConfigMap
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: fluxConfig + "-primary"}, &cm); err != nil {
				return ""
			}
			return cm.Data["MESSAGE"]
		}).WithTimeout(120*time.Second).WithPolling(time.Second).Should(Equal("hello again"), "the primary's copy of the ConfigMap is promoted")
		Eventually(phaseOf(ctx, fluxApp)).WithTimeout(30 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		ranDuring(reapplied)
		applied(ctx, rev)

		By("a commit of a bad version: Herald rolls it back")
		rev = commit(ctx, appVersion{image: "ghcr.io/stefanprodan/podinfo:6.0.2", errorRate: "0.5", message: "hello again"}, "podinfo 6.0.2")
		Eventually(func() int { return newRevisions(ctx) }).WithTimeout(30 * time.Second).Should(Equal(3))
		// Two failed checks end this release in about 20 s, before Flux's health check times
		// out: it fails fast once the Canary is Failed, and re-applies after that.
		Eventually(phaseOf(ctx, fluxApp)).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Equal(flaggerv1.CanaryPhaseFailed))
		Expect(deploymentIn(ctx, fluxApp+"-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2), "the primary keeps the good version")
		Expect(getCanary(ctx, fluxApp).Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("success rate"))))
		Eventually(func() *int32 { return deploymentIn(ctx, fluxApp).Spec.Replicas }).WithTimeout(20 * time.Second).Should(HaveValue(BeZero()))
		// Flux records a revision as applied only once it is healthy: the bad one stays the
		// last attempted, the promoted one the last applied.
		Eventually(func() string {
			v, _, _ := unstructured.NestedString(getFlux(ctx, kustomizationGVK).Object, "status", "lastAttemptedRevision")
			return v
		}).WithTimeout(30 * time.Second).Should(Equal(rev))
		Expect(lastAppliedRevision(ctx)).NotTo(Equal(rev))

		By("Flux reports the Kustomization unhealthy, naming the failed Canary; the Canary says why")
		Eventually(func() fluxCondition { return kustomizationCondition(ctx, "Ready") }).WithTimeout(40 * time.Second).Should(And(
			HaveField("Status", "False"), HaveField("Reason", "HealthCheckFailed"),
			HaveField("Message", ContainSubstring("failed early due to stalled resources: [Canary/ctrl/"+fluxApp+" status: 'Failed']"))))
		canary := getCanary(ctx, fluxApp)
		for _, typ := range []flaggerv1.CanaryConditionType{flaggerv1.StalledType, flaggerv1.ReadyType} {
			Expect(canary.Status.Conditions).To(ContainElement(And(HaveField("Type", typ), HaveField("Message", ContainSubstring("success rate")))),
				"Herald's reason in the %s condition", typ)
		}
		out, err := kubectl("-n", ctrlNS, "wait", "canary/"+fluxApp, "--for=condition=stalled", "--timeout=5s")
		Expect(err).NotTo(HaveOccurred(), out)

		By("Flux keeps reconciling every 10 s: it applies no change beyond the commits, and Herald sees no new revision")
		appliesBefore := len(fluxApplies())
		reapply(ctx)
		Eventually(func() int { return len(fluxApplies()) }).WithTimeout(45*time.Second).WithPolling(time.Second).
			Should(BeNumerically(">=", appliesBefore+2), "a requested and an interval reconciliation of the rolled-back state")
		Expect(fluxChanges(ctx)).To(Equal(map[string]int{
			// The first sync.
			"ConfigMap/ctrl/" + fluxConfig + " created":      1,
			"Deployment/ctrl/" + fluxApp + " created":        1,
			"MetricTemplate/ctrl/fluxapp-error-rate created": 1,
			"Canary/ctrl/" + fluxApp + " created":            1,
			// The image commit and the bad commit.
			"Deployment/ctrl/" + fluxApp + " configured": 2,
			// The ConfigMap commit.
			"ConfigMap/ctrl/" + fluxConfig + " configured": 1,
		}), "kustomize-controller changed objects only for the %d commits", commits)
		Expect(newRevisions(ctx)).To(Equal(commits-1), "one release per commit after the first")
		target = deploymentIn(ctx, fluxApp)
		Expect(*target.Spec.Replicas).To(BeZero(), "Flux's re-applies of replicas: 2 did not scale the idle target")
		Expect(target.Labels).To(HaveKeyWithValue(contract.LabelCanary, fluxApp), "Herald's label survives Flux's applies")
		Expect(target.Annotations).To(HaveKey(contract.AnnotationRevision))
		Expect(target.Annotations).To(HaveKey(contract.AnnotationIdle))
		Expect(target.Annotations).To(HaveKeyWithValue(contract.AnnotationDesiredReplicas, "2"), "Git's replicas, kept as the wish")
		var cm corev1.ConfigMap
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ctrlNS, Name: fluxConfig}, &cm)).To(Succeed())
		Expect(cm.Labels).To(HaveKeyWithValue(contract.LabelTracked, contract.TrackedValue))
		Expect(cm.Annotations).To(HaveKey(contract.AnnotationChecksum))
		all := fluxApplies()
		applies, changed := len(all), countChanged(all)
		AddReportEntry("flux drift", fmt.Sprintf("%d server-side applies of the Kustomization, %d with changes, %d commits; %d releases detected; spec %s (with Flux's start-up %s)",
			applies, changed, commits, newRevisions(ctx), time.Since(specStart).Round(time.Second), time.Since(started).Round(time.Second)))
		GinkgoWriter.Printf("flux: %d applies, %d with changes, %d commits\n", applies, changed, commits)
		Expect(changed).To(Equal(commits), "each commit changed objects once; no other apply changed anything")
	})
})

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
