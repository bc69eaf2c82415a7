// Command cluster builds and runs the local control plane of test/cluster.
//
//	go run ./test/cluster/cmd/cluster build [names...]  # build or reuse binaries, refresh bin/controlplane
//	go run ./test/cluster/cmd/cluster up [--flux]       # start a cluster in the background (state in bin/cluster)
//	go run ./test/cluster/cmd/cluster down              # stop it and remove its state
//	go run ./test/cluster/cmd/cluster env               # print KUBEBUILDER_ASSETS=... and KUBECONFIG=...
//	go run ./test/cluster/cmd/cluster status            # say whether a cluster is up
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-rollouts/herald/test/cluster"
	"github.com/herald-rollouts/herald/test/gitserver"
)

const superviseVerb = "__supervise"

type paths struct {
	root, bin, controlplane, state, kubeconfig, pidFile, readyFile, pidsFile, log, gitURL string
}

func layout() (paths, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return paths{}, err
	}
	bin := filepath.Join(root, "bin")
	state := filepath.Join(bin, "cluster")
	return paths{
		root:         root,
		bin:          bin,
		controlplane: filepath.Join(bin, "controlplane"),
		state:        state,
		kubeconfig:   filepath.Join(bin, "kubeconfig"),
		pidFile:      filepath.Join(state, "supervisor.pid"),
		readyFile:    filepath.Join(state, "ready"),
		pidsFile:     filepath.Join(state, "pids"),
		log:          filepath.Join(state, "supervisor.log"),
		gitURL:       filepath.Join(bin, "git-url"),
	}, nil
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: go run ./test/cluster/cmd/cluster <verb>
  build [names...]  build (or reuse from the cache) the control-plane binaries and link them into bin/controlplane
                    names: `+strings.Join(cluster.AllBinaries, ", ")+` (default: all)
  up [--flux]       start a local cluster in the background; prints the kubeconfig path
                    --flux also runs Flux (source-controller, kustomize-controller `+cluster.FluxVersion+`)
                    and a Git server on 127.0.0.1 whose URL goes to bin/git-url
  down              stop the cluster started by up and remove its state
  status            tell whether a cluster is up
  env               print KUBEBUILDER_ASSETS=... and KUBECONFIG=...`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	p, err := layout()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	switch os.Args[1] {
	case "build":
		err = build(ctx, p, os.Args[2:])
	case "up":
		var flux bool
		if flux, err = upFlags(os.Args[2:]); err == nil {
			err = up(ctx, p, flux)
		}
	case "down":
		err = down(p)
	case "status":
		err = status(p)
	case "env":
		fmt.Printf("KUBEBUILDER_ASSETS=%s\nKUBECONFIG=%s\n", p.controlplane, p.kubeconfig)
	case superviseVerb:
		err = supervise(ctx, p, slices.Contains(os.Args[2:], "--flux"))
	case "-h", "--help", "help":
		usage()
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// upFlags parses the arguments of up.
func upFlags(args []string) (flux bool, err error) {
	for _, a := range args {
		switch a {
		case "--flux", "-flux":
			flux = true
		default:
			return false, fmt.Errorf("up: unknown argument %q (known: --flux)", a)
		}
	}
	return flux, nil
}

func build(ctx context.Context, p paths, names []string) error {
	if len(names) == 0 {
		names = cluster.AllBinaries
	}
	start := time.Now()
	dir, err := cluster.BinDir(ctx, os.Stdout, names...)
	if err != nil {
		return err
	}
	fmt.Printf("binaries ready in %s (%s): %s\n", dir, time.Since(start).Round(100*time.Millisecond), strings.Join(names, " "))
	return nil
}

// supervisorPID returns the pid of a live supervisor, or 0.
func supervisorPID(p paths) int {
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !cluster.ProcessAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && !strings.Contains(string(cmdline), superviseVerb) {
		return 0 // the pid was reused by something else
	}
	return pid
}

func printUsage(p paths) {
	rel := func(s string) string {
		if r, err := filepath.Rel(p.root, s); err == nil {
			return r
		}
		return s
	}
	fmt.Printf("kubeconfig: %s\n\n  export KUBECONFIG=%s\n  %s get nodes\n\n",
		p.kubeconfig, p.kubeconfig, filepath.Join(rel(p.controlplane), "kubectl"))
	if b, err := os.ReadFile(p.gitURL); err == nil {
		fmt.Printf("Flux %s runs in namespace %s; Git server: %s (also in %s; pushes allowed)\n\n",
			cluster.FluxVersion, cluster.FluxNamespace, strings.TrimSpace(string(b)), rel(p.gitURL))
	}
	fmt.Printf("stop it with: go run ./test/cluster/cmd/cluster down (logs: %s)\n", rel(p.state))
}

func up(ctx context.Context, p paths, flux bool) error {
	if pid := supervisorPID(p); pid != 0 {
		if _, err := os.Stat(p.readyFile); err == nil {
			fmt.Printf("a cluster is already up (supervisor pid %d)\n", pid)
			printUsage(p)
			return nil
		}
		return fmt.Errorf("a cluster is starting or broken (supervisor pid %d); see %s, or run down", pid, p.log)
	}
	// Leftovers of a supervisor that died: clean them up first.
	if _, err := os.Stat(p.state); err == nil {
		fmt.Println("cleaning up the leftovers of an earlier cluster")
		if err := down(p); err != nil {
			return err
		}
	}
	start := time.Now()
	// Build in the foreground so that progress shows here.
	names := cluster.ControlPlaneBinaries
	if flux {
		names = append(slices.Clone(names), cluster.FluxBinaries...)
	}
	if _, err := cluster.BinDir(ctx, os.Stdout, names...); err != nil {
		return err
	}
	if err := os.MkdirAll(p.state, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	args := []string{superviseVerb}
	if flux {
		args = append(args, "--flux")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = p.root
	cmd.Stdin = devnull
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	fmt.Printf("starting the cluster (supervisor pid %d, log %s) ...\n", pid, p.log)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return ctx.Err()
		case <-deadline:
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return fmt.Errorf("the cluster did not become ready in 5 minutes; see %s", p.log)
		case <-tick.C:
		}
		if _, err := os.Stat(p.readyFile); err == nil {
			fmt.Printf("cluster up in %s\n", time.Since(start).Round(100*time.Millisecond))
			printUsage(p)
			return nil
		}
		if !cluster.ProcessAlive(pid) {
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("the supervisor exited before the cluster was ready:\n%s", tail(string(b), 40))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// supervise runs in the background (own session): it starts the cluster,
// marks it ready and stops it on SIGTERM/SIGINT.
func supervise(ctx context.Context, p paths, flux bool) error {
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(p.pidFile)
	_ = os.Remove(p.gitURL) // a Git server of an earlier cluster
	// Both routers' kinds, so that `make run` serves istio and gatewayapi Canaries alike.
	c, err := cluster.Start(ctx, cluster.Options{Dir: p.state, Out: os.Stdout, IstioCRDs: true, GatewayAPICRDs: true, Flux: flux})
	if err != nil {
		return err
	}
	if flux {
		// Flux's source-controller clones from here; a person clones, commits and pushes.
		git, err := gitserver.Start(filepath.Join(p.state, "git"), gitserver.Options{Push: true})
		if err == nil {
			defer git.Close()
			_, err = git.CreateRepo(ctx, "apps")
		}
		if err == nil {
			err = writeAtomic(p.gitURL, []byte(git.RepoURL("apps")+"\n"), 0o644)
		}
		if err != nil {
			_ = c.Stop()
			return fmt.Errorf("starting the Git server: %w", err)
		}
		fmt.Printf("git server: %s\n", git.URL)
	}
	var pids []string
	for _, pid := range c.PIDs() {
		pids = append(pids, strconv.Itoa(pid))
	}
	if err := os.WriteFile(p.pidsFile, []byte(strings.Join(pids, "\n")+"\n"), 0o644); err != nil {
		_ = c.Stop()
		return err
	}
	kc, err := os.ReadFile(c.Kubeconfig)
	if err == nil {
		err = writeAtomic(p.kubeconfig, kc, 0o600)
	}
	// `make run` runs Herald as its own user, so that its writes and a person's kubectl are
	// told apart (the workload webhook lets only the controller scale an idle target).
	if err == nil {
		var hkc string
		if hkc, err = c.UserKubeconfig("herald", "system:masters"); err == nil {
			if kc, err = os.ReadFile(hkc); err == nil {
				err = writeAtomic(filepath.Join(filepath.Dir(p.kubeconfig), "herald.kubeconfig"), kc, 0o600)
			}
		}
	}
	if err == nil {
		err = os.WriteFile(p.readyFile, []byte(c.APIServerURL+"\n"), 0o644)
	}
	if err != nil {
		_ = c.Stop()
		return err
	}
	fmt.Printf("ready: %s\n", c.APIServerURL)
	<-ctx.Done()
	fmt.Println("stopping")
	os.Remove(p.readyFile)
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Println("stopped")
	return nil
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// down stops the supervisor, waits for it and for every process it started,
// and removes the state. It does nothing when no cluster is up.
func down(p paths) error {
	pid := supervisorPID(p)
	var children []int
	if b, err := os.ReadFile(p.pidsFile); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				children = append(children, n)
			}
		}
	}
	if pid == 0 && len(children) == 0 {
		if _, err := os.Stat(p.state); errors.Is(err, os.ErrNotExist) {
			fmt.Println("no cluster is up")
			return nil
		}
	}
	if pid != 0 {
		fmt.Printf("stopping the cluster (supervisor pid %d) ...\n", pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(45 * time.Second)
		for cluster.ProcessAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if cluster.ProcessAlive(pid) {
			fmt.Println("supervisor did not stop in time; killing it")
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// The children die with the supervisor (parent-death signal); make sure,
	// group by group.
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range children {
		for cluster.GroupAlive(c) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-c, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(p.state); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(filepath.Dir(p.kubeconfig), "herald.kubeconfig"))
	_ = os.Remove(p.gitURL)
	if err := os.Remove(p.kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Println("cluster down")
	return nil
}

func status(p paths) error {
	pid := supervisorPID(p)
	if pid == 0 {
		fmt.Println("no cluster is up")
		return nil
	}
	if _, err := os.Stat(p.readyFile); err != nil {
		fmt.Printf("a cluster is starting (supervisor pid %d, log %s)\n", pid, p.log)
		return nil
	}
	fmt.Printf("a cluster is up (supervisor pid %d)\n", pid)
	printUsage(p)
	return nil
}
