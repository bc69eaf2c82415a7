// Package readme runs the README's "Try it on the local control plane" commands as a new user
// would, on a copy of the checkout: the blocks are read from README.md itself (the fenced block
// after each `<!-- readme-test: NAME -->` marker) and run with bash, so the README and what it
// promises cannot drift apart.
package readme

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
	"github.com/herald-rollouts/herald/webhooks"
)

func TestReadme(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "README commands")
}

// The blocks of the README's local walkthrough, in the order a user runs them.
const (
	blockClusterUp   = "cluster-up"
	blockRun         = "run"
	blockSamples     = "samples"
	blockRelease     = "release"
	blockClusterDown = "cluster-down"
	// readyLine is what the README tells the user to wait for in `make run`'s output.
	readyLine = "Serving webhook certificate"
)

var _ = Describe("The README's local walkthrough", Label("readme"), Ordered, func() {
	var (
		dir    string // the copy of the checkout the commands run in
		blocks map[string]string
		run    *background
	)

	BeforeAll(func() {
		ctrllog.SetLogger(GinkgoLogr)
		root, err := cluster.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		// A fixed place, so that the Go build cache (keyed by directory) serves later runs.
		dir = filepath.Join(root, "bin", "readme-checkout")
		Expect(copyCheckout(root, dir)).To(Succeed())
		readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
		Expect(err).NotTo(HaveOccurred())
		blocks, err = harness.MarkedBlocks(readme)
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{blockClusterUp, blockRun, blockSamples, blockRelease, blockClusterDown} {
			Expect(blocks).To(HaveKey(name), "README.md has no block marked readme-test: %s", name)
		}
		// Whatever fails, nothing this spec started outlives it.
		DeferCleanup(func() {
			run.stop()
			if _, err := os.Stat(filepath.Join(dir, "bin", "cluster")); err == nil {
				_, _ = shell(context.Background(), dir, nil, "make cluster-down")
			}
		})
	})

	It("starts the control plane, runs Herald with its webhooks, promotes a release of the sample and stops everything", func(ctx SpecContext) {
		By("make cluster-up")
		out, err := shell(ctx, dir, nil, blocks[blockClusterUp])
		Expect(err).NotTo(HaveOccurred(), out)
		kubeconfig := filepath.Join(dir, "bin", "kubeconfig")
		k8s := newClient(kubeconfig)
		pids := clusterPIDs(dir)
		Expect(pids).NotTo(BeEmpty(), "cluster-up recorded no processes")

		By("make run, in the background until it logs " + readyLine)
		run, err = startBackground(dir, blocks[blockRun])
		Expect(err).NotTo(HaveOccurred())
		Eventually(run.output).WithTimeout(4*time.Minute).WithPolling(time.Second).Should(ContainSubstring(readyLine),
			func() string { return "make run output:\n" + run.output() })

		By("the webhook configurations call Herald on loopback")
		for _, name := range []string{webhooks.MutatingName, webhooks.ValidatingName} {
			Expect(webhookURLs(ctx, k8s, name)).To(HaveEach(HavePrefix("https://localhost:")), name)
		}

		By("the README's sample commands")
		env := []string{"KUBECONFIG=" + kubeconfig} // exported by the samples block, for the next one
		out, err = shell(ctx, dir, nil, blocks[blockSamples])
		Expect(err).NotTo(HaveOccurred(), "%s\nmake run output:\n%s", out, run.output())
		Expect(out).To(MatchRegexp(`test\s+podinfo\s+Initialized`))

		By("the API server calls Herald's Canary webhook: an unsupported provider is refused by it")
		bad := &flaggerv1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: "test"},
			Spec: flaggerv1.CanarySpec{
				Provider:  "nginx",
				TargetRef: flaggerv1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
				Service:   flaggerv1.CanaryService{Port: 9898},
				Analysis:  &flaggerv1.CanaryAnalysis{Interval: "10s", Threshold: 2, Iterations: 3},
			},
		}
		err = k8s.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`admission webhook "canary.herald.dev" denied the request`))
		Expect(err.Error()).To(ContainSubstring("spec.provider"))

		By("the README's release commands")
		out, err = shell(ctx, dir, env, blocks[blockRelease])
		Expect(err).NotTo(HaveOccurred(), "%s\nmake run output:\n%s", out, run.output())
		Expect(out).To(ContainSubstring("ghcr.io/stefanprodan/podinfo:6.0.1"))
		var cd flaggerv1.Canary
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "test", Name: "podinfo"}, &cd)).To(Succeed())
		Expect(cd.Status.Phase).To(BeEquivalentTo("Succeeded"))
		var target appsv1.Deployment
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "test", Name: "podinfo"}, &target)).To(Succeed())
		Expect(target.Spec.Replicas).To(HaveValue(BeZero()), "the target is scaled down after the promotion")
		// The workload webhook wrote the revision annotation of the new template at admission.
		Expect(target.Annotations).To(HaveKey("herald.dev/revision"))

		By("Ctrl-C stops make run")
		Expect(run.interrupt()).To(Succeed(), run.output())

		By("make cluster-down leaves no process of the cluster")
		out, err = shell(ctx, dir, nil, blocks[blockClusterDown])
		Expect(err).NotTo(HaveOccurred(), out)
		for name, pid := range pids {
			Expect(cluster.ProcessAlive(pid)).To(BeFalse(), "%s (pid %d) still runs", name, pid)
		}
		Expect(processesMentioning(dir)).To(BeEmpty(), "processes still running from %s", dir)
		Expect(filepath.Join(dir, "bin", "kubeconfig")).NotTo(BeAnExistingFile())
	}, SpecTimeout(20*time.Minute))
})

// copyCheckout copies the files git knows of (tracked, or new and not ignored) from root to
// dst, as a fresh clone of the current work would have them.
func copyCheckout(root, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("listing the checkout's files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// shell runs a README block with bash, stopping at the first failing command.
func shell(ctx context.Context, dir string, env []string, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On a timeout, the whole group (make and what it started) goes.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, GinkgoWriter)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	return out.String(), err
}

// background is a README block left running, like `make run` in a terminal of its own.
type background struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *background) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func startBackground(dir, script string) (*background, error) {
	b := &background{done: make(chan struct{})}
	b.cmd = exec.Command("bash", "-e", "-c", script)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b, b
	// Its own process group, as a terminal's foreground job: Ctrl-C reaches make and Herald.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	return b, nil
}

// interrupt sends SIGINT to the group, as Ctrl-C does, and waits up to 30 s for the exit.
func (b *background) interrupt() error {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-b.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("make run did not stop within 30 s of Ctrl-C")
	}
}

// stop ends the group if it still runs.
func (b *background) stop() {
	if b == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	if b.interrupt() != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

func newClient(kubeconfig string) client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(flaggerv1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// webhookURLs lists the URLs of a webhook configuration's webhooks.
func webhookURLs(ctx context.Context, c client.Client, name string) []string {
	var urls []string
	if name == webhooks.MutatingName {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		Expect(c.Get(ctx, client.ObjectKey{Name: name}, &cfg)).To(Succeed())
		for _, w := range cfg.Webhooks {
			Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), "%s has no caBundle", w.Name)
			urls = append(urls, ptrString(w.ClientConfig.URL))
		}
		return urls
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	Expect(c.Get(ctx, client.ObjectKey{Name: name}, &cfg)).To(Succeed())
	for _, w := range cfg.Webhooks {
		Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), "%s has no caBundle", w.Name)
		urls = append(urls, ptrString(w.ClientConfig.URL))
	}
	return urls
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// clusterPIDs reads the processes `make cluster-up` recorded: the supervisor and the
// control plane's components.
func clusterPIDs(dir string) map[string]int {
	pids := map[string]int{}
	state := filepath.Join(dir, "bin", "cluster")
	if b, err := os.ReadFile(filepath.Join(state, "supervisor.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids["supervisor"] = pid
		}
	}
	b, err := os.ReadFile(filepath.Join(state, "pids"))
	Expect(err).NotTo(HaveOccurred())
	for i, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		Expect(err).NotTo(HaveOccurred())
		pids["component "+strconv.Itoa(i)] = pid
	}
	return pids
}

// processesMentioning lists the live processes whose command line names dir: every component
// of the copy's cluster is started with paths under it.
func processesMentioning(dir string) []string {
	entries, err := os.ReadDir("/proc")
	Expect(err).NotTo(HaveOccurred())
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, dir) {
			found = append(found, fmt.Sprintf("%d: %s", pid, cmdline))
		}
	}
	return found
}
