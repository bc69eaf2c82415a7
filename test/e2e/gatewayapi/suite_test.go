// Package gatewayapi runs Herald as Flagger's Gateway API users run Flagger
// (-mesh-provider=gatewayapi:v1) against the real local control plane serving the Gateway
// API's standard CRDs, with the traffic simulator as the Gateway API implementation and a real
// Prometheus scraping it. It is a suite of its own because its control plane and Herald are
// configured differently from test/e2e's (no Istio, another default provider).
//
//	go test ./test/e2e/gatewayapi -count=1 -ginkgo.label-filter=gatewayapi
package gatewayapi

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/router"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/test/traffic"
)

var (
	env       *cluster.Cluster
	herald    *harness.Herald
	k8s       client.Client
	sim       *traffic.Simulator
	heraldLog *os.File
)

func TestGatewayAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Herald with the Gateway API")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrllog.SetLogger(GinkgoLogr)
	var err error
	env, err = cluster.Start(ctx, cluster.Options{Out: GinkgoWriter, WithPrometheus: true, PrometheusScrapeInterval: time.Second, GatewayAPICRDs: true})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	utilruntime.Must(router.AddToScheme(scheme))
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The gateway is simulated: HTTPRoutes and GRPCRoutes of the apps namespace are accepted
	// and routed, with Istio's gateway metrics and the applications' own. Three kinds of
	// clients: most send plain requests, some are insiders (the A/B header), and one is a
	// browser that keeps its cookies.
	sim = &traffic.Simulator{Client: k8s, Namespaces: []string{appsNS}, RPS: 20, Routing: traffic.RouteGatewayAPI, Classes: []traffic.Class{
		{Name: "plain", Share: 0.7},
		{Name: "insider", Share: 0.15, Headers: map[string]string{"x-canary": "insider"}},
		{Name: "browser", Share: 0.15, Cookies: true},
	}}
	simCtx, stopSim := context.WithCancel(context.Background())
	DeferCleanup(stopSim)
	simURL, err := sim.Start(simCtx, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	Expect(env.SetPrometheusTargets(strings.TrimPrefix(simURL, "http://"))).To(Succeed())

	binary, err := harness.Build(ctx, "./cmd/herald")
	Expect(err).NotTo(HaveOccurred())
	heraldLog, err = os.Create(filepath.Join(env.Dir, "herald.log"))
	Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := harness.HeraldKubeconfig(ctx, env, k8s)
	Expect(err).NotTo(HaveOccurred())
	// As Flagger's Gateway API tutorial installs Flagger: the Gateway API is the default.
	herald, err = harness.StartHerald(ctx, binary, kubeconfig, heraldLog,
		"--metrics-server="+env.PrometheusURL, "--mesh-provider="+flaggerv1.ProviderGatewayAPIV1)
	Expect(err).NotTo(HaveOccurred(), "herald log:\n%s", readFile(heraldLog.Name()))
	DeferCleanup(func() { herald.Stop() })
}, NodeTimeout(20*time.Minute))

var _ = ReportAfterEach(func(report SpecReport) {
	if report.Failed() && heraldLog != nil {
		AddReportEntry("herald log", readFile(heraldLog.Name()))
		out, _ := kubectl("-n", appsNS, "get", "canaries,deployments,services,httproutes,grpcroutes", "-o", "wide")
		AddReportEntry("objects in "+appsNS, out)
		out, _ = kubectl("-n", appsNS, "get", "httproutes,grpcroutes", "-o", "yaml")
		AddReportEntry("routes in "+appsNS, out)
	}
})

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// kubectl runs the control plane's own kubectl against the test cluster.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func createNamespace(ctx context.Context, name string) {
	err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}
