// Package install checks what a cluster operator installs: the container images (unpacked and
// run), the Helm chart (linted, rendered for several value sets and accepted by the real API
// server), and that uninstalling with Helm or kustomize removes the webhook configurations.
package install

import (
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
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
)

var (
	env  *cluster.Cluster
	k8s  client.Client
	root string
)

func TestInstall(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Installing Herald")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrllog.SetLogger(GinkgoLogr)
	var err error
	root, err = cluster.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	env, err = cluster.Start(ctx, cluster.Options{Out: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
}, NodeTimeout(10*time.Minute))

func chartDir() string { return filepath.Join(root, "charts", "herald") }

func kubectl(args ...string) (string, error) {
	return run(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
