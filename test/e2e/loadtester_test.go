package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

// loadTesterBinary is built once, by the first spec that needs it.
var loadTesterBinary string

// loadTester is bin/loadtester running as a process on loopback.
type loadTester struct {
	URL      string // http://127.0.0.1:<port>
	port     int
	stateDir string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
}

// startLoadTester starts the load tester on port (0: a free one) with its gate state in
// stateDir, and stops it when the spec ends.
func startLoadTester(ctx context.Context, port int, stateDir string) *loadTester {
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
		URL: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, stateDir: stateDir,
		logPath: filepath.Join(env.Dir, fmt.Sprintf("loadtester-%d.log", port)), done: make(chan struct{}),
	}
	out, err := os.OpenFile(lt.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	Expect(err).NotTo(HaveOccurred())
	lt.cmd = exec.Command(loadTesterBinary, "-port", strconv.Itoa(port), "-state-dir", stateDir, "-log-encoding", "console")
	lt.cmd.Stdout, lt.cmd.Stderr = out, out
	lt.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	Expect(lt.cmd.Start()).To(Succeed())
	go func() { _ = lt.cmd.Wait(); out.Close(); close(lt.done) }()
	DeferCleanup(lt.stop)
	Eventually(func() int {
		resp, err := http.Get(lt.URL + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}).WithTimeout(10*time.Second).Should(Equal(http.StatusOK), "load tester log:\n%s", readFile(lt.logPath))
	return lt
}

// stop sends SIGTERM and waits for the process to exit.
func (lt *loadTester) stop() {
	if lt.cmd.ProcessState != nil {
		return
	}
	_ = lt.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-lt.done:
	case <-time.After(20 * time.Second):
		_ = lt.cmd.Process.Kill()
		<-lt.done
	}
}

// restart stops the load tester and starts a new process on the same port and state.
func (lt *loadTester) restart(ctx context.Context) *loadTester {
	lt.stop()
	return startLoadTester(ctx, lt.port, lt.stateDir)
}

// post sends a hook payload for a Canary of the controller namespace, as a user's curl does.
func (lt *loadTester) post(path, canary string) (int, string) {
	body := fmt.Sprintf(`{"name": %q, "namespace": %q}`, canary, ctrlNS)
	resp, err := http.Post(lt.URL+path, "application/json", strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

var _ = Describe("The load tester", func() {
	BeforeEach(func() { createNamespace(ctrlNS) })

	It("holds a Canary in Waiting at its closed gate until /gate/open, then the Canary proceeds", func(ctx SpecContext) {
		lt := startLoadTester(ctx, 0, GinkgoT().TempDir())
		app(ctx, "lt-gated")
		blueGreen(ctx, "lt-gated", 1, hook("approval", flaggerv1.ConfirmRolloutHook, lt.URL+"/gate/check"))
		initialized(ctx, "lt-gated")

		setImage(ctx, "lt-gated", image2)
		Eventually(phaseOf(ctx, "lt-gated")).WithTimeout(10 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Consistently(phaseOf(ctx, "lt-gated")).WithTimeout(3 * time.Second).Should(Equal(flaggerv1.CanaryPhaseWaiting))
		Expect(*deploymentIn(ctx, "lt-gated").Spec.Replicas).To(BeZero(), "nothing starts while the gate is closed")
		Eventually(func() string { return strings.Join(eventsFor(ctx, "lt-gated"), "\n") }).Should(
			ContainSubstring("the gate of ctrl/lt-gated is closed"), "the load tester's reason reaches the Canary's events")

		code, body := lt.post("/gate/open", "lt-gated")
		Expect(code).To(Equal(http.StatusAccepted), body)
		Eventually(phaseOf(ctx, "lt-gated")).WithTimeout(60 * time.Second).Should(Equal(flaggerv1.CanaryPhaseSucceeded))
		Expect(deploymentIn(ctx, "lt-gated-primary").Spec.Template.Spec.Containers[0].Image).To(Equal(image2))
		Expect(scrape(lt.URL + "/metrics")).To(MatchRegexp(`herald_loadtester_http_requests_total\{code="403",path="/gate/check"\} [1-9]`))
	})

	It("keeps an opened gate over a restart of the load tester", func(ctx SpecContext) {
		lt := startLoadTester(ctx, 0, GinkgoT().TempDir())
		code, body := lt.post("/gate/open", "lt-kept")
		Expect(code).To(Equal(http.StatusAccepted), body)
		lt = lt.restart(ctx)
		code, body = lt.post("/gate/check", "lt-kept")
		Expect(code).To(Equal(http.StatusOK), body)

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
		lt := startLoadTester(ctx, 0, GinkgoT().TempDir())

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
		Expect(out).To(ContainSubstring("deployment.apps/flagger-loadtester"))
		Expect(out).To(ContainSubstring("service/flagger-loadtester"))
	})
})
