package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

// loadTesterBinary is built once, by the first spec that needs it.
var loadTesterBinary string

// gatesConfigMap is the ConfigMap of config/loadtester/configmap.yaml.
const gatesConfigMap = "flagger-loadtester-gates"

// loadTester is bin/loadtester running as a process on loopback.
type loadTester struct {
	URL     string // http://127.0.0.1:<port>
	port    int
	args    []string
	logPath string
	proc    *harness.Process
}

// startLoadTester starts the load tester on port (0: a free one) with args (where its
// gates are kept, a token...), and stops it when the spec ends.
func startLoadTester(ctx context.Context, port int, args ...string) *loadTester {
	if loadTesterBinary == "" {
		var err error
		loadTesterBinary, err = harness.Build(ctx, "./cmd/loadtester")
		Expect(err).NotTo(HaveOccurred())
	}
	if port == 0 {
		ports, err := cluster.FreePorts(1)
		Expect(err).NotTo(HaveOccurred())
		port = ports[0]
	}
	lt := &loadTester{
		URL: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, args: args,
		logPath: filepath.Join(env.Dir, fmt.Sprintf("loadtester-%d.log", port)),
	}
	out, err := os.OpenFile(lt.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(out.Close)
	lt.proc, err = harness.StartProcess(ctx, harness.ProcessOptions{
		Name: "loadtester", Binary: loadTesterBinary, Out: out,
		Args:     append([]string{"-port", strconv.Itoa(port), "-log-encoding", "console"}, args...),
		ReadyURL: lt.URL + "/healthz", ReadyTimeout: 10 * time.Second, StopGrace: 20 * time.Second,
	})
	Expect(err).NotTo(HaveOccurred(), "load tester log:\n%s", readFile(lt.logPath))
	DeferCleanup(lt.proc.Stop)
	return lt
}

// fileState is the arguments of a load tester whose gates are in a file of a new directory.
func fileState() []string { return []string{"-state-dir", GinkgoT().TempDir()} }

// restart stops the load tester and starts a new process on the same port and arguments.
func (lt *loadTester) restart(ctx context.Context) *loadTester {
	lt.proc.Stop()
	return startLoadTester(ctx, lt.port, lt.args...)
}

// post sends a hook payload for a Canary of the controller namespace, as a user's curl
// does, with the bearer token if one is given.
func (lt *loadTester) post(path, canary string, token ...string) (int, string) {
	body := fmt.Sprintf(`{"name": %q, "namespace": %q}`, canary, ctrlNS)
	req, err := http.NewRequest(http.MethodPost, lt.URL+path, strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// shippedGateStore applies the ServiceAccount, Role, RoleBinding and ConfigMap of
// config/loadtester to the controller namespace, and returns the arguments of a load
// tester that keeps its gates in that ConfigMap as that ServiceAccount (the kubeconfig
// impersonates it), so that the shipped Role is what allows or refuses its calls.
func shippedGateStore() []string {
	root, err := cluster.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	dir := filepath.Join(root, "config", "loadtester")
	out, err := kubectl("apply", "-n", ctrlNS, "-f", filepath.Join(dir, "rbac.yaml"), "-f", filepath.Join(dir, "configmap.yaml"))
	Expect(err).NotTo(HaveOccurred(), out)

	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	for _, user := range cfg.AuthInfos {
		user.Impersonate = "system:serviceaccount:" + ctrlNS + ":flagger-loadtester"
	}
	kubeconfig := filepath.Join(GinkgoT().TempDir(), "loadtester.kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, kubeconfig)).To(Succeed())
	return []string{"-kubeconfig", kubeconfig, "-state-configmap", ctrlNS + "/" + gatesConfigMap}
}

var _ = Describe("The load tester", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("holds a Canary in Waiting at its closed gate until /gate/open, then the Canary proceeds", func(ctx SpecContext) {
		// With a gate token: the hook URL carries it as its password, the operator's curl
		// as a bearer token.
		const token = "e2e-gate-token"
		lt := startLoadTester(ctx, 0, append(fileState(), "-gate-token", token)...)
		hookURL := strings.Replace(lt.URL, "http://", "http://herald:"+token+"@", 1) + "/gate/check"
		app(ctx, "lt-gated")
		blueGreen(ctx, "lt-gated", 1, hook("approval", flaggerv1.ConfirmRolloutHook, hookURL))
		initialized(ctx, "lt-gated")

		setImage(ctx, "lt-gated", image2)
		Eventually(phaseOf(ctx, "lt-gated")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Consistently(phaseOf(ctx, "lt-gated")).WithTimeout(3 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Expect(*deploymentIn(ctx, "lt-gated").Spec.Replicas).To(BeZero(), "nothing starts while the gate is closed")
		// The halt event names the gate hook (as Flagger's does); the load tester's reason is
		// in the Canary's status.
		Eventually(func() string { return strings.Join(eventsFor(ctx, "lt-gated"), "\n") }).Should(
			ContainSubstring("waiting for approval approval"), "the halt names the gate hook")
		Eventually(func() []flaggerv1.CanaryCondition { return getCanary(ctx, "lt-gated").Status.Conditions }).Should(
			ContainElement(HaveField("Message", ContainSubstring("the gate of ctrl/lt-gated is closed"))), "the load tester's reason reaches the Canary's status")
		Expect(strings.Join(eventsFor(ctx, "lt-gated"), "\n")).NotTo(ContainSubstring(token), "the token stays out of events")
		for _, cond := range getCanary(ctx, "lt-gated").Status.Conditions {
			Expect(cond.Message).NotTo(ContainSubstring(token), "the token stays out of the status")
		}

		code, body := lt.post("/gate/open", "lt-gated")
		Expect(code).To(Equal(http.StatusUnauthorized), body)
		code, body = lt.post("/gate/open", "lt-gated", token)
		Expect(code).To(Equal(http.StatusAccepted), body)
		Eventually(phaseOf(ctx, "lt-gated")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "lt-gated-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Expect(scrape(lt.URL + "/metrics")).To(MatchRegexp(`herald_loadtester_http_requests_total\{code="403",path="/gate/check"\} [1-9]`))
	})

	It("keeps an opened gate in its ConfigMap over a pod replacement, shared with a second replica", func(ctx SpecContext) {
		// A new process with no local state stands for a replaced pod: only the ConfigMap,
		// reached through the shipped Role, carries the gate over.
		lt := startLoadTester(ctx, 0, shippedGateStore()...)
		code, body := lt.post("/gate/open", "lt-kept")
		Expect(code).To(Equal(http.StatusAccepted), body)
		lt = lt.restart(ctx)
		code, body = lt.post("/gate/check", "lt-kept")
		Expect(code).To(Equal(http.StatusOK), body)

		replica := startLoadTester(ctx, 0, lt.args...)
		code, body = replica.post("/rollback/open", "lt-kept")
		Expect(code).To(Equal(http.StatusAccepted), body)
		code, body = lt.post("/rollback/check", "lt-kept")
		Expect(code).To(Equal(http.StatusOK), "a rollback opened on one replica is seen by the other: %s", body)
		code, body = replica.post("/rollback/close", "lt-kept")
		Expect(code).To(Equal(http.StatusAccepted), body)
		code, _ = lt.post("/rollback/check", "lt-kept")
		Expect(code).To(Equal(http.StatusForbidden))

		app(ctx, "lt-kept")
		blueGreen(ctx, "lt-kept", 1, hook("approval", flaggerv1.ConfirmRolloutHook, lt.URL+"/gate/check"))
		initialized(ctx, "lt-kept")
		setImage(ctx, "lt-kept", image2)
		Eventually(phaseOf(ctx, "lt-kept")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(eventsFor(ctx, "lt-kept")).NotTo(ContainElement(ContainSubstring("waiting for approval")), "never held at the gate")
	})

	It("runs a rollout hook's hey command on its built-in generator, once while it runs", func(ctx SpecContext) {
		// No pod network here: the load goes to a loopback server instead of podinfo-canary.
		var received atomic.Int64
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { received.Add(1) }))
		DeferCleanup(target.Close)
		lt := startLoadTester(ctx, 0, fileState()...)

		load := hook("load-test", flaggerv1.RolloutHook, lt.URL+"/")
		load.Metadata = map[string]string{"type": "cmd", "cmd": "hey -z 1m -q 10 -c 2 " + target.URL + "/"}
		app(ctx, "lt-load")
		blueGreen(ctx, "lt-load", 2, load) // two steps 10 s apart: the second finds the load running
		initialized(ctx, "lt-load")
		setImage(ctx, "lt-load", image2)

		Eventually(received.Load).WithTimeout(30 * time.Second).Should(BeNumerically(">", 20))
		Eventually(phaseOf(ctx, "lt-load")).WithTimeout(90 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		metrics := scrape(lt.URL + "/metrics")
		Expect(metrics).To(ContainSubstring("herald_loadtester_loads_started_total 1"))
		Expect(metrics).To(MatchRegexp(`herald_loadtester_loads_deduplicated_total [1-9]`))
		Expect(metrics).To(MatchRegexp(`herald_loadtester_load_requests_total\{code="200"\} [1-9]`))
		Expect(readFile(lt.logPath)).To(ContainSubstring("load started"))
	})

	It("ships manifests (config/loadtester) that the API server accepts", func(ctx SpecContext) {
		root, err := cluster.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl("apply", "--dry-run=server", "-n", ctrlNS, "-k", filepath.Join(root, "config", "loadtester"))
		Expect(err).NotTo(HaveOccurred(), out)
		for _, want := range []string{"serviceaccount/flagger-loadtester", "role.rbac.authorization.k8s.io/flagger-loadtester-gates",
			"rolebinding.rbac.authorization.k8s.io/flagger-loadtester-gates", "configmap/" + gatesConfigMap,
			"deployment.apps/flagger-loadtester", "service/flagger-loadtester"} {
			Expect(out).To(ContainSubstring(want))
		}
	})
})
