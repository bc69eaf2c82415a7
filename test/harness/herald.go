// Package harness runs Herald's own binaries as real processes for the end-to-end suites and
// the demo: built from this checkout, started on loopback, stopped with everything they started.
package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-rollouts/herald/test/cluster"
)

// Build compiles a command of this repository (e.g. "./cmd/herald") into bin/ and returns
// the binary's path.
func Build(ctx context.Context, pkg string) (string, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, "bin", filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// Herald is a running manager process.
type Herald struct {
	proc       *Process
	MetricsURL string // http://127.0.0.1:<port>/metrics
	ProbeURL   string // http://127.0.0.1:<port>
	WebhookURL string // https://localhost:<port>, what the API server calls
}

// StartHerald starts bin/herald against kubeconfig (see HeraldKubeconfig) with --install-crds
// and its webhooks registered on a loopback URL, logs to out, and
// returns once /readyz answers 200 (or an error with the process's fate if it does not).
func StartHerald(ctx context.Context, binary, kubeconfig string, out io.Writer, extraArgs ...string) (*Herald, error) {
	ports, err := cluster.FreePorts(3)
	if err != nil {
		return nil, err
	}
	metricsPort, probePort, webhookPort := ports[0], ports[1], ports[2]
	certDir, err := os.MkdirTemp("", "herald-certs-")
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--install-crds",
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		// The API server calls the webhooks on loopback, trusting the rotated CA Herald injects.
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(webhookPort),
		"--webhook-url=https://localhost:" + strconv.Itoa(webhookPort),
		"--cert-dir=" + certDir,
		"--controller-username=" + HeraldUser,
		"--log-encoding=console",
	}, extraArgs...)
	h := &Herald{
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		ProbeURL:   fmt.Sprintf("http://127.0.0.1:%d", probePort),
		WebhookURL: fmt.Sprintf("https://localhost:%d", webhookPort),
	}
	// Herald must not outlive the test or demo that started it (StartProcess sees to it).
	h.proc, err = StartProcess(ctx, ProcessOptions{
		Name: "herald", Binary: binary, Args: args, Out: out,
		ReadyURL: h.ProbeURL + "/readyz", ReadyTimeout: 60 * time.Second, StopGrace: 10 * time.Second,
		AfterExit: func() { _ = os.RemoveAll(certDir) },
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Stop sends SIGTERM, waits up to 10 s for a clean exit, then kills the process.
func (h *Herald) Stop() {
	if h == nil {
		return
	}
	h.proc.Stop()
}

// Kill sends SIGKILL, as a node failure or an OOM kill would (nothing is released), and
// returns once the process has been reaped.
func (h *Herald) Kill() {
	_ = syscall.Kill(h.proc.Pid(), syscall.SIGKILL)
	h.proc.Stop()
}

// CPUTime is the CPU time (user + system) the process has used so far, from /proc.
func (h *Herald) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.proc.Pid()))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat: %q", b)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat: %q", b)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}
