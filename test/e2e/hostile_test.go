package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/webhooks"
)

// The hostile-tenants spec: honest Canaries release while Canaries written by a hostile
// author exist, each aimed at a way to crash Herald, stall the others or borrow another
// team's credentials.
const (
	honestNS  = "honest"
	hostileNS = "hostile"
	ownerNS   = "team-b"

	honestCount      = 10
	honestIterations = 2
	// The shortest interval Herald (like Flagger) runs: shorter ones are raised to it.
	honestInterval = flaggerv1.MinAnalysisInterval

	// Team B's credentials: the Secret of its MetricTemplates, and a literal header.
	teamBToken  = "team-b-secret-token-4f9c1e"
	teamBHeader = "Bearer team-b-header-token-77aa03"
)

// headerLog records every request every stand-in server receives, with all its headers.
type headerLog struct {
	mu      sync.Mutex
	entries []headerEntry
}

type headerEntry struct {
	server string
	header http.Header
}

func (l *headerLog) record(server string, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, headerEntry{server, r.Header.Clone()})
}

// seen lists the servers that received secret in any header value.
func (l *headerLog) seen(secret string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		for _, vs := range e.header {
			for _, v := range vs {
				if strings.Contains(v, secret) && !contains(out, e.server) {
					out = append(out, e.server)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func (l *headerLog) count(server string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.server == server {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// standIn is a real HTTP server on loopback that records every request in log before h
// answers it. Handlers that hang must end when the spec's release channel is closed, which
// is registered after the servers so that it runs before they close.
func standIn(log *headerLog, name string, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(name, r)
		h(w, r)
	}))
	DeferCleanup(srv.Close)
	return srv
}

func promAnswer(value string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"` + value + `"]}]}}`
}

func constantAnswer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}
}

// deadAddress accepts connections and never answers them.
func deadAddress(release <-chan struct{}) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	var held sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held.Go(func() { <-release; c.Close() })
		}
	}()
	DeferCleanup(func() { l.Close(); held.Wait() })
	return "http://" + l.Addr().String() + "/"
}

// workload is podinfo with one replica, named name, in namespace ns.
func workload(ctx context.Context, ns, name string) {
	var d appsv1.Deployment
	sample("podinfo-deployment.yaml", &d)
	d.Name, d.Namespace = name, ns
	d.Labels = map[string]string{"app": name}
	d.Spec.Replicas = ptr.To(int32(1))
	d.Spec.Selector.MatchLabels = map[string]string{"app": name}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.MinReadySeconds = 0
	Expect(k8s.Create(ctx, &d)).To(Succeed())
}

// rolledOut reports whether a Deployment runs its current template on all its replicas.
func rolledOut(ctx context.Context, ns, name string) bool {
	var d appsv1.Deployment
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
		return false
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
}

// timeRollout sets a Deployment's image and returns how long the control plane takes to roll
// it out.
func timeRollout(ctx context.Context, ns, name, image string) time.Duration {
	start := time.Now()
	setImageIn(ns, name, image)
	Eventually(func() bool { return rolledOut(ctx, ns, name) }).WithTimeout(time.Minute).WithPolling(50 * time.Millisecond).Should(BeTrue())
	return time.Since(start)
}

// bgCanary is a blue/green Canary on the kubernetes provider.
func bgCanary(ns, name string, iterations, threshold int, interval time.Duration, mutate func(*flaggerv1.Canary)) *flaggerv1.Canary {
	c := &flaggerv1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: flaggerv1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   flaggerv1.CanaryService{Port: 9898},
			Analysis: &flaggerv1.CanaryAnalysis{
				Interval: interval.String(), Threshold: threshold, Iterations: iterations,
			},
		},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func phaseIn(ctx context.Context, ns, name string) flaggerv1.CanaryPhase {
	var c flaggerv1.Canary
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &c); err != nil {
		return ""
	}
	return c.Status.Phase
}

func setImageIn(ns, name, image string) {
	out, err := kubectl("-n", ns, "set", "image", "deployment/"+name, "podinfod="+image)
	Expect(err).NotTo(HaveOccurred(), out)
}

// eventsIn returns the notes of the events recorded on a Canary of namespace ns.
func eventsIn(ctx context.Context, ns, name string) string {
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return ""
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Canary" && e.Regarding.Name == name {
			notes = append(notes, e.Note)
		}
	}
	return strings.Join(notes, "\n")
}

// peaks samples Herald's goroutines and resident memory while the spec runs.
type peaks struct {
	goroutines atomic.Int64
	rss        atomic.Int64
	samples    atomic.Int64
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)$`)

func (p *peaks) sample(h *harness.Herald) {
	if rss, _, err := h.Memory(); err == nil && rss > p.rss.Load() {
		p.rss.Store(rss)
	}
	resp, err := http.Get(h.MetricsURL)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if m := goroutinesRE.FindStringSubmatch(b.String()); m != nil {
		if n, _ := strconv.ParseInt(m[1], 10, 64); n > p.goroutines.Load() {
			p.goroutines.Store(n)
		}
	}
	p.samples.Add(1)
}

func canaryWebhookCalls(h *harness.Herald) int {
	re := regexp.MustCompile(`(?m)^controller_runtime_webhook_requests_total\{code="\d+",webhook="` + regexp.QuoteMeta(webhooks.CanaryPath) + `"\} (\d+)$`)
	total := 0
	for _, m := range re.FindAllStringSubmatch(scrape(h.MetricsURL), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total
}

// shippedManager returns the objects of the given kinds in config/manager/manager.yaml (the
// chart rendered with its default values).
func shippedManager(kinds ...string) []client.Object {
	root, err := cluster.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var out []client.Object
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var tm metav1.TypeMeta
		Expect(yaml.Unmarshal([]byte(doc), &tm)).To(Succeed())
		if !contains(kinds, tm.Kind) {
			continue
		}
		var obj client.Object
		switch tm.Kind {
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		default:
			Fail("shippedManager cannot decode " + tm.Kind)
		}
		Expect(yaml.Unmarshal([]byte(doc), obj)).To(Succeed())
		out = append(out, obj)
	}
	Expect(out).NotTo(BeEmpty(), "config/manager/manager.yaml has no %v", kinds)
	return out
}

var _ = Describe("Hostile tenants", Label("hostile"), Ordered, Serial, func() {
	var (
		h        *harness.Herald
		pid      int
		logPath  string
		log      = &headerLog{}
		release  = make(chan struct{})
		peak     = &peaks{}
		servers  = map[string]*httptest.Server{}
		deadAddr string
	)

	heraldAlive := func() {
		Expect(h.Exited()).To(BeFalse(), "Herald exited:\n%s", readFile(logPath))
		Expect(h.Pid()).To(Equal(pid))
		Expect(readFile(logPath)).NotTo(ContainSubstring("panic:"), "Herald logged a panic")
	}

	BeforeAll(func(ctx SpecContext) {
		// The suite's Herald gives way to one with this spec's log and flags; it is started
		// again once this spec's Herald has stopped and the hostile objects are gone.
		DeferCleanup(func(ctx SpecContext) { startHerald(ctx) }, NodeTimeout(2*time.Minute))
		herald.Stop()
		for _, ns := range []string{honestNS, hostileNS, ownerNS} {
			createNamespace(ns)
		}
		DeferCleanup(func(ctx SpecContext) {
			// Herald is stopped by now, and its webhooks fail closed: a finalizer removal,
			// a metadata-only update, must still go through (matchConditions), or deleting
			// a namespace would hang until Herald is back.
			for _, ns := range []string{honestNS, hostileNS} {
				var list flaggerv1.CanaryList
				Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				for i := range list.Items {
					c := &list.Items[i]
					Expect(k8s.Patch(ctx, c, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).
						To(Succeed(), "removing the finalizer of %s/%s with Herald down", c.Namespace, c.Name)
				}
			}
			for _, ns := range []string{honestNS, hostileNS, ownerNS} {
				Expect(client.IgnoreNotFound(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))).To(Succeed())
			}
		}, NodeTimeout(time.Minute))

		// Stand-ins for every server a Canary can name; each records every header it gets.
		serve := func(name string, h http.HandlerFunc) { servers[name] = standIn(log, name, h) }
		serve("honest-prometheus", constantAnswer(promAnswer("99")))
		serve("honest-hook", func(w http.ResponseWriter, r *http.Request) {})
		serve("team-b-prometheus", constantAnswer(promAnswer("1")))
		serve("attacker", constantAnswer(promAnswer("1")))
		serve("null-prometheus", constantAnswer(`{"status":"success","data":{"resultType":"vector","result":[null]}}`))
		serve("nan-prometheus", constantAnswer(promAnswer("NaN")))
		serve("huge-prometheus", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[`))
			chunk := []byte(strings.Repeat(`{"metric":{"a":"b"},"value":[1,"1"]},`, 2000))
			for sent := 0; sent < 1<<30; sent += len(chunk) { // 1 GiB, unless Herald stops reading
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		serve("stalling-prometheus", func(w http.ResponseWriter, r *http.Request) {
			select { // 10 s before any answer
			case <-time.After(10 * time.Second):
				constantAnswer(promAnswer("1"))(w, r)
			case <-r.Context().Done():
			case <-release:
			}
		})
		serve("redirecting-prometheus", redirectTo("http://169.254.169.254/api/v1/query"))
		serve("redirecting-hook", redirectTo("http://169.254.169.254/latest/meta-data/iam/security-credentials/"))
		serve("redirecting-alert", redirectTo("http://169.254.169.254/latest/meta-data/"))
		serve("hanging-hook", func(w http.ResponseWriter, r *http.Request) {
			select { // for hours, unless the caller gives up
			case <-r.Context().Done():
			case <-release:
			}
		})
		deadAddr = deadAddress(release)
		// Registered after the servers, so it runs before they close (last in, first out).
		DeferCleanup(func() { close(release) })

		logPath = filepath.Join(env.Dir, "herald-hostile.log")
		out, err := os.Create(logPath)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(out.Close)
		// Four reconcile workers, fewer than the Canaries whose hooks hang below.
		// A slow pace of new Canaries (two a second), so that a flood of them is felt.
		h, err = harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, out, "--metrics-server="+servers["honest-prometheus"].URL, "--threadiness=4",
			"--initialization-rate=2", "--initialization-burst=2")
		Expect(err).NotTo(HaveOccurred(), readFile(logPath))
		DeferCleanup(func() {
			h.Stop()
			if CurrentSpecReport().Failed() {
				AddReportEntry("hostile Herald log", readFile(logPath))
			}
		})
		pid = h.Pid()

		samplerCtx, stopSampler := context.WithCancel(context.Background())
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for samplerCtx.Err() == nil {
				peak.sample(h)
				select {
				case <-samplerCtx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		DeferCleanup(func() {
			stopSampler()
			<-sampled
			_, hwm, _ := h.Memory()
			report := fmt.Sprintf("peak RSS %d MiB (VmHWM %d MiB), peak goroutines %d, over %d samples",
				peak.rss.Load()>>20, hwm>>20, peak.goroutines.Load(), peak.samples.Load())
			AddReportEntry("Herald under hostile tenants", report)
			fmt.Fprintln(GinkgoWriter, "Herald under hostile tenants:", report)
		})

		By("the honest Canaries, initialised before anything hostile exists")
		Expect(k8s.Create(ctx, &flaggerv1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Namespace: honestNS, Name: "success-rate"},
			Spec: flaggerv1.MetricTemplateSpec{
				Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: servers["honest-prometheus"].URL},
				Query:    `sum(rate(http_requests_total{namespace="{{ namespace }}",app="{{ target }}"}[{{ interval }}]))`,
			},
		})).To(Succeed())
		for i := range honestCount {
			name := fmt.Sprintf("honest-%02d", i)
			workload(ctx, honestNS, name)
			Expect(k8s.Create(ctx, bgCanary(honestNS, name, honestIterations, 2, honestInterval, func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Metrics = []flaggerv1.CanaryMetric{{Name: "success", Interval: "1m",
					TemplateRef:    &flaggerv1.CrossNamespaceObjectReference{Name: "success-rate"},
					ThresholdRange: &flaggerv1.CanaryThresholdRange{Min: ptr.To(90.0)}}}
				c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{
					{Name: "smoke", Type: flaggerv1.RolloutHook, URL: servers["honest-hook"].URL, Timeout: "5s"},
					{Name: "notify", Type: flaggerv1.EventHook, URL: servers["honest-hook"].URL, Timeout: "5s"},
				}
			}))).To(Succeed())
		}
		for i := range honestCount {
			name := fmt.Sprintf("honest-%02d", i)
			Eventually(func() flaggerv1.CanaryPhase { return phaseIn(ctx, honestNS, name) }).
				WithTimeout(2*time.Minute).Should(Equal(flaggerv1.CanaryPhaseInitialized), name)
		}
	}, NodeTimeout(5*time.Minute))

	It("gives Herald's ServiceAccount exactly the rights the code uses (SubjectAccessReview table)", func(ctx SpecContext) {
		// The shipped bindings (config/manager, rendered from the chart), renamed so that they
		// sit next to the local run's, bind the generated roles to the ServiceAccount an install
		// runs Herald as.
		for _, obj := range shippedManager("ClusterRoleBinding", "RoleBinding") {
			obj.SetName(obj.GetName() + "-sar")
			obj.SetResourceVersion("")
			Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, obj))).To(Succeed())
		}
		const sa = "system:serviceaccount:" + harness.HeraldNamespace + ":herald"
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + harness.HeraldNamespace, "system:authenticated"}
		type row struct {
			verb, group, resource, sub, ns, name string
			allowed                              bool
		}
		hs := harness.HeraldNamespace
		table := []row{
			// What Herald does.
			{"get", "flagger.app", "canaries", "", "test", "", true},
			{"patch", "flagger.app", "canaries", "", "test", "", true},
			{"patch", "flagger.app", "canaries", "status", "test", "", true},
			{"update", "flagger.app", "canaries", "finalizers", "test", "", true},
			{"list", "flagger.app", "metrictemplates", "", "", "", true},
			{"create", "apps", "deployments", "", "test", "", true},
			{"patch", "apps", "deployments", "", "test", "", true},
			{"delete", "apps", "deployments", "", "test", "", true}, // a primary, when its Canary is deleted
			{"create", "", "services", "", "test", "", true},
			{"get", "", "secrets", "", "test", "", true},
			{"patch", "", "configmaps", "", "test", "", true},
			{"create", "", "events", "", "test", "", true},
			{"list", "", "pods", "", "test", "", true},
			{"create", "autoscaling", "horizontalpodautoscalers", "", "test", "", true},
			{"update", "networking.istio.io", "virtualservices", "", "test", "", true},
			{"get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "herald-validating", true},
			{"watch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "herald-mutating", true},
			{"patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "herald-mutating", true},
			{"get", "coordination.k8s.io", "leases", "", hs, "herald-leader-election", true},
			{"create", "coordination.k8s.io", "leases", "", hs, "", true},
			{"update", "coordination.k8s.io", "leases", "", hs, "herald-leader-election", true},
			{"update", "", "secrets", "", hs, "herald-webhook-cert", true},
			{"create", "authentication.k8s.io", "tokenreviews", "", "", "", true},
			{"create", "authorization.k8s.io", "subjectaccessreviews", "", "", "", true},
			// What it must not do.
			{"patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "gatekeeper-validating", false},
			{"patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "istio-sidecar-injector", false},
			{"list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "", false},
			{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "herald-validating", false},
			{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "herald-validating", false},
			{"create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "", false},
			{"get", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager", false},
			{"update", "coordination.k8s.io", "leases", "", "default", "herald-leader-election", false},
			{"list", "coordination.k8s.io", "leases", "", hs, "", false},
			{"update", "", "secrets", "", "test", "db-password", false},
			{"update", "", "secrets", "", hs, "other-secret", false},
			{"delete", "", "secrets", "", "test", "", false},
			{"delete", "", "configmaps", "", "test", "", false},
			{"delete", "", "services", "", "test", "", false},
			{"delete", "apps", "replicasets", "", "test", "", false},
			{"delete", "autoscaling", "horizontalpodautoscalers", "", "test", "", false},
			{"delete", "networking.istio.io", "virtualservices", "", "test", "", false},
			{"delete", "flagger.app", "canaries", "", "test", "", false},
			{"update", "flagger.app", "metrictemplates", "", "test", "", false},
			{"create", "flagger.app", "alertproviders", "", "test", "", false},
			{"get", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "canaries.flagger.app", false},
			{"create", "", "pods", "", "test", "", false},
			{"create", "", "pods", "exec", "test", "", false},
			{"create", "", "serviceaccounts", "token", hs, "herald", false},
			{"get", "", "nodes", "", "", "", false},
			{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "", false},
			{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "", false},
			{"impersonate", "", "users", "", "", "admin", false},
		}
		var wrong []string
		for _, r := range table {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: sa, Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: r.verb, Group: r.group, Resource: r.resource, Subresource: r.sub, Namespace: r.ns, Name: r.name,
				},
			}}
			Expect(k8s.Create(ctx, sar)).To(Succeed())
			if sar.Status.Allowed != r.allowed {
				wrong = append(wrong, fmt.Sprintf("%s %s/%s %s in %q named %q: allowed=%v, want %v",
					r.verb, r.group, r.resource, r.sub, r.ns, r.name, sar.Status.Allowed, r.allowed))
			}
		}
		Expect(wrong).To(BeEmpty())
		AddReportEntry("SubjectAccessReview table", fmt.Sprintf("%d rows, all as expected", len(table)))
	})

	It("survives hostile metric servers, template bombs and link-local redirects, and leaks no credential", func(ctx SpecContext) {
		By("team B's MetricTemplates: one names its Prometheus, one leaves the address to the Canary")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ownerNS, Name: "prometheus-auth"},
			StringData: map[string]string{"token": teamBToken}})).To(Succeed())
		for name, address := range map[string]string{"owned": servers["team-b-prometheus"].URL, "unowned": ""} {
			Expect(k8s.Create(ctx, &flaggerv1.MetricTemplate{
				ObjectMeta: metav1.ObjectMeta{Namespace: ownerNS, Name: name},
				Spec: flaggerv1.MetricTemplateSpec{
					Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: address,
						SecretRef: &corev1.LocalObjectReference{Name: "prometheus-auth"},
						Headers:   map[string][]string{"Authorization": {teamBHeader}, "X-Scope-OrgID": {"team-b"}}},
					Query: `sum(rate(requests_total{app="{{ variables.app }}"}[{{ interval }}]))`,
				},
			})).To(Succeed())
		}
		By("a template bomb that passes admission: a string doubled 40 times")
		bomb := `{{ $x := "0123456789abcdef" }}`
		for range 40 {
			bomb += `{{ $x = printf "%s%s" $x $x }}`
		}
		Expect(k8s.Create(ctx, &flaggerv1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "bomb"},
			Spec: flaggerv1.MetricTemplateSpec{
				Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus", Address: servers["attacker"].URL},
				Query:    bomb + `{{ $x }}`,
			},
		})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "alert"},
			StringData: map[string]string{"address": servers["redirecting-alert"].URL + "/hook", "token": "hostile-own-token"}})).To(Succeed())
		Expect(k8s.Create(ctx, &flaggerv1.AlertProvider{
			ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "redirecting"},
			Spec:       flaggerv1.AlertProviderSpec{Type: "webhook", SecretRef: &corev1.LocalObjectReference{Name: "alert"}},
		})).To(Succeed())

		anyValue := &flaggerv1.CanaryThresholdRange{Min: ptr.To(-1e9)}
		inline := func(server string) func(*flaggerv1.Canary) {
			return func(c *flaggerv1.Canary) {
				c.Spec.MetricsServer = servers[server].URL
				c.Spec.Analysis.Metrics = []flaggerv1.CanaryMetric{{Name: "m", Interval: "1m", Query: "up", ThresholdRange: anyValue}}
			}
		}
		hostile := map[string]struct {
			mutate func(*flaggerv1.Canary)
			want   string // in the Canary's events
		}{
			"null":   {inline("null-prometheus"), "the query returned a null sample"},
			"nan":    {inline("nan-prometheus"), "the query returned NaN"},
			"huge":   {inline("huge-prometheus"), "larger than 10 MiB"},
			"stall":  {inline("stalling-prometheus"), "no complete answer within 5s"},
			"detour": {inline("redirecting-prometheus"), "169.254.169.254"},
			"bomb": {func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Metrics = []flaggerv1.CanaryMetric{{Name: "bomb", Interval: "1m",
					TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "bomb"}, ThresholdRange: anyValue}}
			}, "larger than 64 KiB"},
			"borrower": {func(c *flaggerv1.Canary) {
				// Team B's templates, from another namespace (Flagger allows it by default), with
				// this Canary's own server as metricsServer, and a variable that tries to
				// leave its string.
				c.Spec.MetricsServer = servers["attacker"].URL
				vars := map[string]string{"app": `x"}[1m])) or vector(1) or sum(x{a="`}
				c.Spec.Analysis.Metrics = []flaggerv1.CanaryMetric{
					{Name: "owned", Interval: "1m", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "owned", Namespace: ownerNS},
						TemplateVariables: vars, ThresholdRange: anyValue},
					{Name: "unowned", Interval: "1m", TemplateRef: &flaggerv1.CrossNamespaceObjectReference{Name: "unowned", Namespace: ownerNS},
						TemplateVariables: vars, ThresholdRange: anyValue},
				}
			}, "Advance borrower." + hostileNS + " canary iteration 2/"},
			"hook-detour": {func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{{Name: "acceptance", URL: servers["redirecting-hook"].URL, Timeout: "5s"}}
				c.Spec.Analysis.Alerts = []flaggerv1.CanaryAlert{{Name: "chat", Severity: flaggerv1.SeverityInfo,
					ProviderRef: flaggerv1.CrossNamespaceObjectReference{Name: "redirecting"}}}
			}, "169.254.169.254"},
		}
		names := make([]string, 0, len(hostile))
		for name, hc := range hostile {
			names = append(names, name)
			workload(ctx, hostileNS, name)
			Expect(k8s.Create(ctx, bgCanary(hostileNS, name, 10, 100, honestInterval, hc.mutate))).To(Succeed())
		}
		sort.Strings(names)
		for _, name := range names {
			Eventually(func() flaggerv1.CanaryPhase { return phaseIn(ctx, hostileNS, name) }).
				WithTimeout(time.Minute).Should(Equal(flaggerv1.CanaryPhaseInitialized), name)
			setImageIn(hostileNS, name, image2)
		}
		for _, name := range names {
			Eventually(func() string { return eventsIn(ctx, hostileNS, name) }).WithTimeout(90*time.Second).
				Should(ContainSubstring(hostile[name].want), "events of %s", name)
		}
		heraldAlive()

		By("credentials reached only the address their owner named")
		Expect(log.count("team-b-prometheus")).To(BeNumerically(">", 0), "team B's own template was queried")
		Expect(log.seen(teamBToken)).To(Equal([]string{"team-b-prometheus"}), "team B's Secret token")
		// The literal header is replaced by the Secret's token at team B's own address.
		Expect(log.seen(teamBHeader)).To(BeEmpty(), "team B's literal Authorization header")
		Expect(log.count("attacker")).To(BeNumerically(">", 0), "the template without an address was queried at the Canary's server")
		Expect(eventsIn(ctx, hostileNS, "borrower")).NotTo(ContainSubstring("Metric query failed"))
		Expect(eventsIn(ctx, hostileNS, "detour")).To(ContainSubstring("refused by Herald's egress policy"))
		Expect(readFile(logPath)).NotTo(ContainSubstring(teamBToken))
		Expect(log.count("redirecting-alert")).To(BeNumerically(">", 0), "the alert was posted to the provider's own address")

		By("addresses Herald never calls are refused at admission, with their field paths")
		direct := bgCanary(hostileNS, "metadata", 1, 1, honestInterval, func(c *flaggerv1.Canary) {
			c.Spec.MetricsServer = "http://169.254.169.254/"
			c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{{Name: "h", URL: "http://metadata.google.internal/computeMetadata/v1/"}}
		})
		err := k8s.Create(ctx, direct)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(And(ContainSubstring("spec.metricsServer"), ContainSubstring("spec.analysis.webhooks[0].url"), ContainSubstring("link-local")))
		err = k8s.Create(ctx, &flaggerv1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Namespace: hostileNS, Name: "range-bomb"},
			Spec: flaggerv1.MetricTemplateSpec{Provider: flaggerv1.MetricTemplateProvider{Type: "prometheus"},
				Query: `{{range 20}}{{printf "%01000000d" 0}}{{end}}`},
		})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.query"))
		heraldAlive()
	})

	It("calls its fail-closed validators only for new objects and spec changes, and the scale webhook only for scale-ups from zero", func(ctx SpecContext) {
		var c flaggerv1.Canary
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: honestNS, Name: "honest-00"}, &c)).To(Succeed())
		before := canaryWebhookCalls(h)
		Expect(k8s.Patch(ctx, &c, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"web"}}}`)))).To(Succeed())
		Consistently(func() int { return canaryWebhookCalls(h) }).WithTimeout(2*time.Second).Should(Equal(before), "a label edit reached the validator")
		Expect(k8s.Patch(ctx, &c, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"analysis":{"threshold":3}}}`)))).To(Succeed())
		Eventually(func() int { return canaryWebhookCalls(h) }).Should(BeNumerically(">", before), "a spec change is validated")

		scaleCalls := func() int {
			re := regexp.MustCompile(`(?m)^controller_runtime_webhook_requests_total\{code="\d+",webhook="` + regexp.QuoteMeta(webhooks.ScalePath) + `"\} (\d+)$`)
			n := 0
			for _, m := range re.FindAllStringSubmatch(scrape(h.MetricsURL), -1) {
				v, _ := strconv.Atoi(m[1])
				n += v
			}
			return n
		}
		before = scaleCalls()
		out, err := kubectl("-n", honestNS, "scale", "deployment/honest-00-primary", "--replicas=2")
		Expect(err).NotTo(HaveOccurred(), out)
		Consistently(scaleCalls).WithTimeout(2*time.Second).Should(Equal(before), "scaling a running Deployment reached Herald")
		out, err = kubectl("-n", honestNS, "scale", "deployment/honest-00", "--replicas=3")
		Expect(err).To(HaveOccurred(), "an idle target is not scaled: %s", out)
		Expect(out).To(ContainSubstring("honest-00-primary"))
		Expect(scaleCalls()).To(BeNumerically(">", before))
		heraldAlive()
	})

	It("releases the honest Canaries within iterations × interval + 5 s (plus the control plane's own rollouts) while hooks hang for hours and 200 event hooks post to a dead address", func(ctx SpecContext) {
		By("six Canaries whose hooks hang for hours, and two with 100 event hooks each to an address that never answers")
		for i := range 6 {
			name := fmt.Sprintf("hang-%d", i)
			workload(ctx, hostileNS, name)
			Expect(k8s.Create(ctx, bgCanary(hostileNS, name, 10, 100, honestInterval, func(c *flaggerv1.Canary) {
				c.Spec.Analysis.Webhooks = []flaggerv1.CanaryWebhook{
					{Name: "forever", Type: flaggerv1.PreRolloutHook, URL: servers["hanging-hook"].URL, Timeout: "3h", Retries: 5},
					{Name: "again", Type: flaggerv1.RolloutHook, URL: servers["hanging-hook"].URL, Timeout: "3h", Retries: 5},
				}
			}))).To(Succeed())
		}
		// The CRD allows 100 webhooks per Canary: two Canaries with 100 event hooks each.
		hostileNames := []string{"flood-a", "flood-b"}
		for f, name := range hostileNames {
			workload(ctx, hostileNS, name)
			Expect(k8s.Create(ctx, bgCanary(hostileNS, name, 10, 100, honestInterval, func(c *flaggerv1.Canary) {
				for i := range 100 {
					c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, flaggerv1.CanaryWebhook{
						Name: fmt.Sprintf("event-%d-%03d", f, i), Type: flaggerv1.EventHook, URL: deadAddr, Timeout: "1h", Retries: 3})
				}
			}))).To(Succeed())
		}
		for i := range 6 {
			hostileNames = append(hostileNames, fmt.Sprintf("hang-%d", i))
		}
		for _, name := range hostileNames {
			Eventually(func() flaggerv1.CanaryPhase { return phaseIn(ctx, hostileNS, name) }).
				WithTimeout(time.Minute).Should(Equal(flaggerv1.CanaryPhaseInitialized), name)
			setImageIn(hostileNS, name, image2)
		}
		// At least as many hanging calls as the hostile Herald has reconcile workers
		// (--threadiness=4): made on the workers, they would hold all of them.
		Eventually(func() int { return log.count("hanging-hook") }).WithTimeout(time.Minute).Should(BeNumerically(">=", 4))

		By("the honest releases, beside a Deployment no Canary manages that times the control plane's rollouts")
		// A release makes the control plane roll out twice (the canary's pods, then the
		// primary's), and on a loaded two-core machine each takes seconds that are not
		// Herald's: the bound is iterations × interval + 5 s for Herald, plus those two
		// rollouts, measured on a plain Deployment at the same moments.
		workload(ctx, honestNS, "control")
		Eventually(func() bool { return rolledOut(ctx, honestNS, "control") }).WithTimeout(time.Minute).Should(BeTrue())
		rollouts := make(chan time.Duration, 2)
		go func() {
			defer GinkgoRecover()
			defer close(rollouts) // a failed timing fails the spec without blocking it
			rollouts <- timeRollout(ctx, honestNS, "control", image2)
			time.Sleep(time.Duration(honestIterations)*honestInterval - 3*time.Second) // the promotions
			rollouts <- timeRollout(ctx, honestNS, "control", image1)
		}()
		started := map[string]time.Time{}
		for i := range honestCount {
			name := fmt.Sprintf("honest-%02d", i)
			setImageIn(honestNS, name, image2)
			started[name] = time.Now()
		}
		took := map[string]time.Duration{}
		Eventually(func() int {
			for name, t0 := range started {
				if _, done := took[name]; !done && phaseIn(ctx, honestNS, name) == flaggerv1.CanaryPhaseSucceeded {
					took[name] = time.Since(t0)
				}
			}
			return len(took)
		}).WithTimeout(3*time.Minute).WithPolling(200*time.Millisecond).Should(Equal(honestCount), "honest releases done: %v", took)
		var worst time.Duration
		var lines []string
		for name, d := range took {
			worst = max(worst, d)
			lines = append(lines, fmt.Sprintf("%s %s", name, d.Round(100*time.Millisecond)))
		}
		sort.Strings(lines)
		controlPlane := <-rollouts + <-rollouts
		bound := time.Duration(honestIterations)*honestInterval + 5*time.Second + controlPlane
		AddReportEntry("honest releases", fmt.Sprintf("worst %s (bound %s: %s × %s + 5 s + the control plane's two rollouts, %s): %s",
			worst.Round(100*time.Millisecond), bound.Round(100*time.Millisecond), honestInterval, fmt.Sprint(honestIterations), controlPlane.Round(100*time.Millisecond), strings.Join(lines, ", ")))
		heraldAlive()
		Expect(worst).To(BeNumerically("<=", bound), "the slowest honest release took %s, more than iterations × interval + 5 s + the control plane's rollouts (%s) = %s", worst, controlPlane, bound)
	})

	It("starts another namespace's new Canary within a turn or two while one namespace floods new Canaries", func(ctx SpecContext) {
		By("80 new Canaries in the hostile namespace, whose targets do not exist (they cost the control plane nothing): 40 s of turns at two a second")
		const flood = 80
		for i := range flood {
			Expect(k8s.Create(ctx, bgCanary(hostileNS, fmt.Sprintf("new-%02d", i), 2, 2, honestInterval, func(c *flaggerv1.Canary) {
				c.Labels = map[string]string{"flood": "new"}
				c.Spec.TargetRef.Name = fmt.Sprintf("nothing-%02d", i)
			}))).To(Succeed())
		}
		DeferCleanup(func(ctx SpecContext) {
			Expect(k8s.DeleteAllOf(ctx, &flaggerv1.Canary{}, client.InNamespace(hostileNS), client.MatchingLabels{"flood": "new"})).To(Succeed())
		})

		By("the flood's turns begin once its Canaries stop coming")
		Eventually(func() int {
			var list flaggerv1.CanaryList
			Expect(k8s.List(ctx, &list, client.InNamespace(hostileNS), client.MatchingLabels{"flood": "new"})).To(Succeed())
			started := 0
			for _, c := range list.Items {
				if !waitingForTurn(c) {
					started++
				}
			}
			return started
		}).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(BeNumerically(">", 2), "no flooding Canary took a turn beyond the burst")

		By("then one honest Canary: it starts at one of the next turns, not behind the flood")
		workload(ctx, honestNS, "late")
		asked := time.Now()
		Expect(k8s.Create(ctx, bgCanary(honestNS, "late", honestIterations, 2, honestInterval, nil))).To(Succeed())
		Eventually(func() flaggerv1.CanaryPhase { return phaseIn(ctx, honestNS, "late") }).
			WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).ShouldNot(BeEmpty(), "the honest Canary waited behind the flood")
		started := time.Since(asked)
		var list flaggerv1.CanaryList
		Expect(k8s.List(ctx, &list, client.InNamespace(hostileNS), client.MatchingLabels{"flood": "new"})).To(Succeed())
		waiting, marked := 0, 0
		for _, c := range list.Items {
			if waitingForTurn(c) {
				waiting++
				if len(c.Status.Conditions) > 0 && c.Status.ObservedGeneration == c.Generation {
					marked++ // kstatus InProgress: a Kustomization waiting for it waits
				}
			}
		}
		AddReportEntry("new Canaries under a flood", fmt.Sprintf("the honest Canary started %s after its creation, with %d of the %d flooding Canaries still waiting", started.Round(100*time.Millisecond), waiting, flood))
		// Were they not waiting, the spec would show nothing about turns.
		Expect(waiting).To(BeNumerically(">=", flood/2), "the flood was not paced")
		Expect(marked).To(Equal(waiting), "a Canary waiting for its turn has no status saying so")
		Eventually(func() flaggerv1.CanaryPhase { return phaseIn(ctx, honestNS, "late") }).
			WithTimeout(time.Minute).Should(Equal(flaggerv1.CanaryPhaseInitialized))
		heraldAlive()
	})
})

var _ = Describe("Herald's /metrics", Label("hostile"), func() {
	It("answers only callers the API server authenticates and authorizes, over HTTPS", func(ctx SpecContext) {
		// A second Herald that watches an empty namespace and serves no webhooks, so that it
		// acts on nothing next to the suite's; only its /metrics is of interest.
		const ns = "metrics-only"
		createNamespace(ns)
		path := filepath.Join(env.Dir, "herald-metrics.log")
		out, err := os.Create(path)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(out.Close)
		h, err := harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, out,
			"--metrics-secure=true", "--enable-webhooks=false", "--namespace="+ns)
		Expect(err).NotTo(HaveOccurred(), readFile(path))
		DeferCleanup(h.Stop)
		url := strings.Replace(h.MetricsURL, "http://", "https://", 1)

		token := func(sa string) string {
			acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
			Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, acct))).To(Succeed())
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}
			Expect(k8s.SubResource("token").Create(ctx, acct, req)).To(Succeed())
			return req.Status.Token
		}
		var reader client.Object
		for _, obj := range shippedManager("ClusterRole") {
			if strings.HasSuffix(obj.GetName(), "-metrics-reader") {
				reader = obj
			}
		}
		Expect(reader).NotTo(BeNil(), "config/manager ships a metrics-reader ClusterRole")
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, reader))).To(Succeed())
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-metrics-scraper"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.GetName()},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "scraper"}},
		}))).To(Succeed())

		insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // Herald's self-signed metrics certificate
		get := func(bearer string) (int, string) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := insecure.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		// The metrics server may start listening a moment after the probes answer.
		Eventually(func() error {
			resp, err := insecure.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
		code, _ := get("")
		Expect(code).To(Equal(http.StatusUnauthorized), "no token")
		code, body := get("not-a-token")
		Expect(code).To(Equal(http.StatusUnauthorized), "a forged token")
		Expect(body).NotTo(ContainSubstring("flagger_info"))
		code, _ = get(token("nobody"))
		Expect(code).To(Equal(http.StatusForbidden), "a ServiceAccount without herald-metrics-reader")
		Eventually(func() int { c, _ := get(token("scraper")); return c }).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
		_, body = get(token("scraper"))
		Expect(body).To(ContainSubstring("flagger_info"))
		resp, err := http.Get(h.MetricsURL) // plain HTTP is not served
		if err == nil {
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP on the HTTPS port")
		}
	})
})

// waitingForTurn reports whether a Canary has not started initialising: no phase, and no
// condition but those that say it waits for its turn.
func waitingForTurn(c flaggerv1.Canary) bool {
	if c.Status.Phase != "" {
		return false
	}
	for _, cond := range c.Status.Conditions {
		if cond.Reason != "WaitingForTurn" {
			return false
		}
	}
	return true
}
