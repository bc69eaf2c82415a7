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
	"syscall"
	"time"

	"github.com/prometheus/procfs"

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
	// WebhookListen is 127.0.0.1:<port>, where the webhook server listens (what a proxy in
	// front of it forwards to).
	WebhookListen string
}

// StartHerald starts bin/herald against kubeconfig (see HeraldKubeconfig) with --install-crds
// and its webhooks registered on a loopback URL, logs to out, and
// returns once /readyz answers 200 (or an error with the process's fate if it does not).
func StartHerald(ctx context.Context, binary, kubeconfig string, out io.Writer, extraArgs ...string) (*Herald, error) {
	return StartHeraldWith(ctx, HeraldOptions{Binary: binary, Kubeconfig: kubeconfig, Out: out, Args: extraArgs})
}

// HeraldOptions configure StartHeraldWith.
type HeraldOptions struct {
	// Binary is bin/herald (see Build); Kubeconfig Herald's identity (see HeraldKubeconfig).
	Binary, Kubeconfig string
	// Out receives Herald's log.
	Out io.Writer
	// WebhookURL is the base URL the webhook configurations are registered with. Empty: the
	// webhook server's own loopback address. Replicas that share one address (a proxy in
	// front of them) register the same configurations and never undo each other's.
	WebhookURL string
	// Args are further flags.
	Args []string
}

// StartHeraldWith is StartHerald with options.
func StartHeraldWith(ctx context.Context, o HeraldOptions) (*Herald, error) {
	ports, err := cluster.FreePorts(3)
	if err != nil {
		return nil, err
	}
	metricsPort, probePort, webhookPort := ports[0], ports[1], ports[2]
	certDir, err := os.MkdirTemp("", "herald-certs-")
	if err != nil {
		return nil, err
	}
	h := &Herald{
		MetricsURL:    fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		ProbeURL:      fmt.Sprintf("http://127.0.0.1:%d", probePort),
		WebhookURL:    fmt.Sprintf("https://localhost:%d", webhookPort),
		WebhookListen: fmt.Sprintf("127.0.0.1:%d", webhookPort),
	}
	if o.WebhookURL != "" {
		h.WebhookURL = o.WebhookURL
	}
	args := append([]string{
		"--kubeconfig=" + o.Kubeconfig,
		"--install-crds",
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort),
		// Plain HTTP on loopback, so tests scrape without a token.
		"--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		// The API server calls the webhooks on loopback, trusting the rotated CA Herald injects.
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(webhookPort),
		"--webhook-url=" + h.WebhookURL,
		"--cert-dir=" + certDir,
		"--controller-username=" + HeraldUser,
		"--log-encoding=console",
	}, o.Args...)
	// Herald must not outlive the test or demo that started it (StartProcess sees to it).
	h.proc, err = StartProcess(ctx, ProcessOptions{
		Name: "herald", Binary: o.Binary, Args: args, Out: o.Out,
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

// Exited reports whether the process has exited.
func (h *Herald) Exited() bool { return h == nil || h.proc.Exited() }

// Kill sends SIGKILL, as a node failure or an OOM kill would (nothing is released), and
// returns once the process has been reaped.
func (h *Herald) Kill() {
	_ = syscall.Kill(h.proc.Pid(), syscall.SIGKILL)
	h.proc.Stop()
}

// Pid is the process's id.
func (h *Herald) Pid() int { return h.proc.Pid() }

// Memory returns the process's resident set size now and its peak so far, in bytes.
func (h *Herald) Memory() (rss, peak int64, err error) { return ProcMemory(h.proc.Pid()) }

// CPUTime is the CPU time (user + system) the process has used so far.
func (h *Herald) CPUTime() (time.Duration, error) { return ProcCPUTime(h.proc.Pid()) }

// ProcMemory returns the resident set size of process pid now and its peak so far (VmRSS and
// VmHWM of /proc/<pid>/status), in bytes.
func ProcMemory(pid int) (rss, peak int64, err error) {
	st, err := ProcStatus(pid)
	return int64(st.VmRSS), int64(st.VmHWM), err
}

// ProcStatus is what /proc/<pid>/status reports (VmRSS, RssAnon, RssFile, ..., in bytes).
func ProcStatus(pid int) (procfs.ProcStatus, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStatus{}, err
	}
	return p.NewStatus()
}

// ProcCPUTime is the CPU time (user + system) process pid has used so far, from /proc.
func ProcCPUTime(pid int) (time.Duration, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}
