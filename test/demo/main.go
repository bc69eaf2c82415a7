// Command demo is `make demo`: it builds what it needs, starts the local control plane and
// Herald, applies the sample Deployment and Canary, and shows what a user would look at.
// Everything it started is stopped at the end, or on Ctrl-C.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/harness"
)

var start = time.Now()

func step(format string, args ...any) {
	fmt.Printf("\n[%6.1fs] ==> %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	keep := flag.Bool("keep", false, "keep the control plane and Herald running until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keep bool) error {
	fmt.Println("Herald demo: a local Kubernetes control plane (no Docker), Herald, and a sample Canary.")
	fmt.Println("It takes about 90 seconds once the control plane is built; the very first build of the")
	fmt.Println("control plane from the Go module proxy takes about 12 minutes and is cached afterwards.")

	step("Building (or reusing) the control plane: etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok")
	env, err := cluster.Start(ctx, cluster.Options{Out: os.Stdout})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		step("Stopping Herald and the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}()
	fmt.Printf("    API server %s, kubeconfig %s\n", env.APIServerURL, env.Kubeconfig)

	step("Building and starting Herald (it installs its CRDs)")
	bin, err := harness.Build(ctx, "./cmd/herald")
	if err != nil {
		return err
	}
	logPath := filepath.Join(env.Dir, "herald.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	admin, err := client.New(env.Config, client.Options{})
	if err != nil {
		return err
	}
	heraldKubeconfig, err := harness.HeraldKubeconfig(ctx, env, admin)
	if err != nil {
		return err
	}
	herald, err := harness.StartHerald(ctx, bin, heraldKubeconfig, logFile)
	if err != nil {
		return fmt.Errorf("%w\n--- herald log ---\n%s", err, tail(logPath, 30))
	}
	defer herald.Stop()
	fmt.Printf("    Herald is ready; metrics at %s\n", herald.MetricsURL)

	kubectl := func(args ...string) error {
		fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = indent(os.Stdout), indent(os.Stderr)
		return cmd.Run()
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	step("Applying the samples: namespace test, Deployment podinfo, Canary podinfo")
	if err := kubectl("apply", "-k", filepath.Join(root, "config", "samples")); err != nil {
		return err
	}
	step("Waiting for podinfo to roll out on the fake kwok node")
	if err := kubectl("-n", "test", "rollout", "status", "deployment/podinfo", "--timeout=120s"); err != nil {
		return err
	}
	if err := kubectl("-n", "test", "get", "deployments,pods", "-o", "wide"); err != nil {
		return err
	}
	step("Herald initialises the Canary: primary, Services, target scaled to zero")
	if err := waitPhase(ctx, kubectl, "Initialized", 60*time.Second); err != nil {
		return err
	}
	if err := kubectl("-n", "test", "get", "canaries,deployments,services"); err != nil {
		return err
	}

	step("Releasing a new version: kubectl set image deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.0.1")
	fmt.Println("    The analysis runs 3 checks 10 s apart, then promotes: about 25 s.")
	release := time.Now()
	if err := kubectl("-n", "test", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"); err != nil {
		return err
	}
	if err := followCanary(ctx, env, "Succeeded", 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("    promoted %.1fs after the apply\n", time.Since(release).Seconds())
	if err := kubectl("-n", "test", "get", "deployments", "-o", "wide"); err != nil {
		return err
	}
	if err := kubectl("-n", "test", "events", "--for", "canary/podinfo"); err != nil {
		return err
	}

	step("A GitOps loop re-applies the original manifest (replicas: 2) to the idle target")
	if err := kubectl("apply", "-f", filepath.Join(root, "config", "samples", "podinfo-deployment.yaml")); err != nil {
		return err
	}
	fmt.Println("    The image reverted to 6.0.0, a new revision, so Herald analyses it like any other:")
	if err := followCanary(ctx, env, "Succeeded", 2*time.Minute); err != nil {
		return err
	}
	if err := kubectl("apply", "-f", filepath.Join(root, "config", "samples", "podinfo-deployment.yaml")); err != nil {
		return err
	}
	fmt.Println("    Re-applied once more, unchanged: the target stays at zero, the wish is recorded, no pod starts:")
	if err := kubectl("-n", "test", "get", "deployment", "podinfo", "-o",
		`jsonpath=    replicas={.spec.replicas} desired-replicas={.metadata.annotations.herald\.dev/desired-replicas} revision={.metadata.annotations.herald\.dev/revision}{"\n"}`); err != nil {
		return err
	}

	step("Flagger-compatible metrics from Herald")
	if err := showMetrics(herald.MetricsURL); err != nil {
		return err
	}

	step("Summary")
	fmt.Println("    control plane: etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1")
	fmt.Println("    Herald: webhooks served over TLS with a rotated certificate, Canary test/podinfo initialised,")
	fmt.Println("    two releases analysed and promoted, a GitOps re-apply absorbed without pod churn")
	fmt.Println("    (Istio traffic shifting with Prometheus analysis arrives with the next issues)")
	fmt.Printf("    Herald's log: %s\n", logPath)
	if keep {
		fmt.Printf("\n    Everything keeps running; try: KUBECONFIG=%s %s get canaries -A\n", env.Kubeconfig, filepath.Join(env.BinDir, "kubectl"))
		fmt.Println("    Press Ctrl-C to stop.")
		<-ctx.Done()
	}
	return nil
}

// waitPhase waits until the sample Canary reaches phase.
func waitPhase(ctx context.Context, kubectl func(...string) error, phase string, timeout time.Duration) error {
	return kubectl("-n", "test", "wait", "canary/podinfo", "--for=jsonpath={.status.phase}="+phase, fmt.Sprintf("--timeout=%ds", int(timeout.Seconds())))
}

// followCanary prints the Canary's phase and iterations as they change, until phase.
func followCanary(ctx context.Context, env *cluster.Cluster, phase string, timeout time.Duration) error {
	kc := filepath.Join(env.BinDir, "kubectl")
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		out, err := exec.CommandContext(ctx, kc, "--kubeconfig", env.Kubeconfig, "-n", "test", "get", "canary", "podinfo", "-o",
			"jsonpath={.status.phase} iterations={.status.iterations} failedChecks={.status.failedChecks}").Output()
		if err != nil {
			return fmt.Errorf("reading the canary: %w", err)
		}
		if now := string(out); now != last {
			fmt.Printf("    [%6.1fs] %s\n", time.Since(start).Seconds(), now)
			last = now
		}
		if strings.HasPrefix(last, phase+" ") {
			return nil
		}
		if strings.HasPrefix(last, "Failed ") && phase != "Failed" {
			return fmt.Errorf("the canary failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("canary not %s within %s", phase, timeout)
}

func showMetrics(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "flagger_") {
			fmt.Println("    " + sc.Text())
		}
	}
	return sc.Err()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// indent prefixes every line written to w, so command output stands apart from progress lines.
func indent(w io.Writer) io.Writer { return &prefixWriter{w: w, atLineStart: true} }

type prefixWriter struct {
	w           io.Writer
	atLineStart bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if p.atLineStart {
			out = append(out, "      "...)
		}
		out = append(out, c)
		p.atLineStart = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
