package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The real Flagger, for the cut-over tests: version 1.44.0 of github.com/fluxcd/flagger, built
// from the Go module proxy with `go install` (its go.mod has no replace directive) and cached
// like the control-plane binaries, beside its own CRDs.
const (
	FlaggerModule  = "github.com/fluxcd/flagger"
	FlaggerVersion = "v1.44.0"
	// Flagger is the binary's name; FlaggerCRDs its CRDs (artifacts/flagger/crd.yaml of the
	// module), next to it in the cache.
	Flagger     = "flagger"
	FlaggerCRDs = "flagger-crds.yaml"
)

// FlaggerModuleDir returns the extracted source of Flagger's module (its kustomize overlays,
// Helm chart and CRDs), downloading it through the module proxy when needed.
func FlaggerModuleDir(ctx context.Context) (string, error) {
	work, err := os.MkdirTemp("", "herald-flagger-mod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	return moduleDir(ctx, work, FlaggerModule, FlaggerVersion)
}

// BuildFlagger makes sure Flagger's binary and CRDs are in the cache, building them the first
// time (about 3 minutes on 2 cores, with progress on out), and returns their paths.
func BuildFlagger(ctx context.Context, out io.Writer) (binary, crds string, err error) {
	cache, err := CacheDir()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(cache, "flagger-"+FlaggerVersion)
	binary, crds = filepath.Join(dir, Flagger), filepath.Join(dir, FlaggerCRDs)
	complete := func() bool {
		for _, f := range []string{binary, crds} {
			if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() {
				return false
			}
		}
		return true
	}
	if complete() {
		return binary, crds, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".flagger-"+FlaggerVersion+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	p := newProgress(out)
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		p.printf("waiting for another process building flagger %s ...", FlaggerVersion)
		if err := flockCtx(ctx, lock); err != nil {
			return "", "", err
		}
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if complete() {
		return binary, crds, nil
	}

	started := time.Now()
	p.printf("building flagger (%s@%s) — the first build takes ~3 min, later ones come from the cache ...", FlaggerModule, FlaggerVersion)
	tmp, err := os.MkdirTemp(cache, ".tmp-flagger-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp) // no-op once renamed
	work, err := os.MkdirTemp("", "herald-build-flagger-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(work)
	pkg := FlaggerModule + "/cmd/flagger@" + FlaggerVersion
	p.printf("go install %s", pkg)
	if err := goInstall(ctx, p, work, tmp, pkg); err != nil {
		return "", "", err
	}
	modDir, err := moduleDir(ctx, work, FlaggerModule, FlaggerVersion)
	if err != nil {
		return "", "", err
	}
	if err := copyFile(filepath.Join(modDir, "artifacts", "flagger", "crd.yaml"), filepath.Join(tmp, FlaggerCRDs), 0o644); err != nil {
		return "", "", fmt.Errorf("collecting flagger's CRDs: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", fmt.Errorf("installing flagger into the cache: %w", err)
	}
	p.printf("built flagger in %s → %s", time.Since(started).Round(time.Second), dir)
	return binary, crds, nil
}

// goInstall runs `go install pkg` with GOBIN=bin, printing a heartbeat every 30 s.
func goInstall(ctx context.Context, p *progress, dir, bin, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", pkg)
	cmd.Dir = dir
	cmd.Env = append(goEnv(), "GOBIN="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	started := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("go install %s: %w\n%s", pkg, err, out)
			}
			return nil
		case <-tick.C:
			p.printf("  ... go install still running (%s)", time.Since(started).Round(time.Second))
		}
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
