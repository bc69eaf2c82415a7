// Package cutover replaces a running Flagger 1.44 with Herald on the local control plane, as a
// user would: Flagger (built from the Go module proxy) promotes releases of a Deployment with a
// tracked ConfigMap and Secret, a DaemonSet, an HPA target and an Istio canary, with its own
// CRDs; then it stops, Herald's CRDs go over Flagger's and Herald starts. Nothing may ripple:
// no analysis, no hook call, no primary pod replaced, idle targets stay idle; the next releases
// promote under Herald. It also starts Herald with the exact command lines of Flagger's
// kustomize overlays and Helm chart.
package cutover

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

var (
	env              *cluster.Cluster
	k8s              client.Client
	heraldBinary     string
	heraldKubeconfig string
	flaggerBinary    string
	flaggerCRDs      string
	hooks            *hookCounter
	logDir           string
)

func TestCutover(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Cut-over from Flagger")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrllog.SetLogger(GinkgoLogr)
	var err error
	// Flagger's binary first: the first build takes minutes, and it needs no cluster.
	flaggerBinary, flaggerCRDs, err = cluster.BuildFlagger(ctx, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	heraldBinary, err = harness.Build(ctx, "./cmd/herald")
	Expect(err).NotTo(HaveOccurred())

	env, err = cluster.Start(ctx, cluster.Options{Out: GinkgoWriter, IstioCRDs: true})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })
	logDir = env.Dir

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	utilruntime.Must(istionetworking.AddToScheme(scheme))
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	heraldKubeconfig, err = harness.HeraldKubeconfig(ctx, env, k8s)
	Expect(err).NotTo(HaveOccurred())

	hooks = startHookCounter()
	DeferCleanup(hooks.close)
}, NodeTimeout(30*time.Minute))

// hookCounter is an analysis hook endpoint on loopback that answers 200 and counts the calls,
// by path.
type hookCounter struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func startHookCounter() *hookCounter {
	h := &hookCounter{calls: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.calls[r.URL.Path]++
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	return h
}

func (h *hookCounter) close() { h.srv.Close() }

// total is the number of calls so far.
func (h *hookCounter) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		n += c
	}
	return n
}

func (h *hookCounter) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.calls))
	for k, v := range h.calls {
		out[k] = v
	}
	return out
}

func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// logFile creates a log file in the cluster's directory.
func logFile(name string) *os.File {
	f, err := os.Create(filepath.Join(logDir, name))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(f.Close)
	return f
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func freePort() int {
	ports, err := cluster.FreePorts(1)
	Expect(err).NotTo(HaveOccurred())
	return ports[0]
}

func describe(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	return strings.Join(parts, " ")
}
