// Package e2e runs Herald as a real process against the real local control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) and checks what a user
// would: objects, rollouts, kubectl output, metrics.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

var (
	env    *cluster.Cluster
	herald *harness.Herald
	k8s    client.Client
	// heraldKubeconfig is Herald's own identity ("the controller" for the webhooks).
	heraldKubeconfig string
	heraldBinary     string
	// heraldLog keeps Herald's output; it is printed when a spec fails.
	heraldLog *os.File
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Herald end-to-end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	env, err = cluster.Start(ctx, cluster.Options{Out: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

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
	herald, err = harness.StartHerald(ctx, heraldBinary, heraldKubeconfig, heraldLog)
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
