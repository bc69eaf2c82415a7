// Package e2e runs Herald as a real process against the real local control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) and checks what a user
// would: objects, rollouts, kubectl output, metrics.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/herald-rollouts/herald/test/traffic"
)

var (
	env    *cluster.Cluster
	herald *harness.Herald
	k8s    client.Client
	// heraldKubeconfig is Herald's own identity ("the controller" for the webhooks).
	heraldKubeconfig string
	heraldBinary     string
	// sim is the simulated mesh traffic (test/traffic).
	sim *traffic.Simulator
	// heraldLog keeps Herald's output; it is printed when a spec fails.
	heraldLog *os.File
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Herald end-to-end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// controller-runtime's clients log API warnings (e.g. deprecated fields) through this.
	ctrllog.SetLogger(GinkgoLogr)
	var err error
	// Prometheus scrapes the traffic simulator every second; Istio's CRDs let istio Canaries
	// have their VirtualServices and DestinationRules.
	env, err = cluster.Start(ctx, cluster.Options{Out: GinkgoWriter, WithPrometheus: true, PrometheusScrapeInterval: time.Second, IstioCRDs: true})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	utilruntime.Must(istionetworking.AddToScheme(scheme))
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The mesh's data plane is simulated: requests routed by the VirtualServices of the ctrl
	// namespace, with Istio's metrics, for Prometheus to scrape and Herald to judge.
	sim = &traffic.Simulator{Client: k8s, Namespaces: []string{ctrlNS}, RPS: 20, Classes: []traffic.Class{
		{Name: "plain", Share: 0.8},
		{Name: "insider", Share: 0.2, Headers: map[string]string{"x-canary": "insider"}},
	}}
	simCtx, stopSim := context.WithCancel(context.Background())
	DeferCleanup(stopSim)
	simURL, err := sim.Start(simCtx, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	Expect(env.SetPrometheusTargets(strings.TrimPrefix(simURL, "http://"))).To(Succeed())

	heraldBinary, err = harness.Build(ctx, "./cmd/herald")
	Expect(err).NotTo(HaveOccurred())
	heraldLog, err = os.Create(filepath.Join(env.Dir, "herald.log"))
	Expect(err).NotTo(HaveOccurred())
	heraldKubeconfig, err = harness.HeraldKubeconfig(ctx, env, k8s)
	Expect(err).NotTo(HaveOccurred())
	startHerald(ctx)
	DeferCleanup(func() { herald.Stop() })
}, NodeTimeout(20*time.Minute))

var _ = ReportAfterEach(func(report SpecReport) {
	if report.Failed() && heraldLog != nil {
		AddReportEntry("herald log", readFile(heraldLog.Name()))
		for _, ns := range []string{"ctrl", "hooks", "test"} {
			out, _ := kubectl("-n", ns, "get", "canaries,deployments,daemonsets,replicasets,pods,services", "-o", "wide")
			AddReportEntry("objects in "+ns, out)
		}
	}
})

// startHerald starts (or restarts) the Herald process of the suite.
func startHerald(ctx context.Context) {
	var err error
	herald, err = harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, heraldLog, "--metrics-server="+env.PrometheusURL)
	Expect(err).NotTo(HaveOccurred(), "herald log:\n%s", readFile(heraldLog.Name()))
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// ctxTimeout is a context for one API call sequence in a spec.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
