// Package cluster builds and runs a real, local Kubernetes control plane on the
// loopback interface: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok (fake nodes whose pods become Running and Ready) and,
// on request, Prometheus. Every binary is compiled from the Go module proxy
// and cached per component and version, so only the first build is slow.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Versions of the components this package builds.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.6.16"
	KwokVersion       = "v0.8.0"
	PrometheusVersion = "v0.316.0"
	// FluxVersion is the release of source-controller and kustomize-controller (the last
	// that builds with Go 1.26; v1.10 needs Go 1.27).
	FluxVersion = "v1.9.6"
)

// Binary names understood by Build and BinDir.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	Kubectl               = "kubectl"
	Kwok                  = "kwok"
	Prometheus            = "prometheus"
	SourceController      = "source-controller"
	KustomizeController   = "kustomize-controller"
)

// The CRDs of each Flux controller, copied at build time from config/crd/bases of the
// controller's module, one file next to its binary.
const (
	SourceControllerCRDs    = "source-controller-crds.yaml"
	KustomizeControllerCRDs = "kustomize-controller-crds.yaml"
)

// KwokStagesFile is the file, next to the kwok binary, that holds kwok's own
// Stage documents for nodes and pods, as the kwok module ships them. A started
// cluster writes the file kwok runs with, of the same name, into its state
// directory: these stages plus the simulated pod failures (SimulateAnnotation).
const KwokStagesFile = "kwok-stages.yaml"

// ControlPlaneBinaries are the binaries Start needs without Prometheus.
var ControlPlaneBinaries = []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kubectl, Kwok}

// FluxBinaries are the Flux controllers Start runs with Options.Flux.
var FluxBinaries = []string{SourceController, KustomizeController}

// AllBinaries is everything Build knows how to build.
var AllBinaries = append(append(slices.Clone(ControlPlaneBinaries), Prometheus), FluxBinaries...)

// component is one throwaway module and the binaries built from it.
type component struct {
	key     string // cache key prefix
	module  string
	version string
	imports []string // packages named in tools.go
	pkgs    []string // packages built
	bins    []string // binaries produced, in the order of pkgs
	extra   []string // other files the cache dir must hold
	tags    string
	ldflags string
	// stagingReplaces: pin every staging module k8s.io/kubernetes replaces
	// with ./staging/... to the matching v0.x release.
	stagingReplaces bool
	// ownModule: build the module's own main package (its root) in a writable copy of the
	// module, keeping its go.mod (versions, replace directives) and applying modReplaces
	// ("path=path@version", as `go mod edit -replace` takes them). Its dependencies are
	// resolved with -mod=mod instead of `go mod tidy`, which would also need the modules
	// of its tests, some of which the module proxy does not serve.
	ownModule   bool
	modReplaces []string
	eta         string
	post        func(ctx context.Context, outDir string) error
}

var k8sLdflags = strings.Join([]string{
	"-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion,
	"-X k8s.io/component-base/version.gitMajor=1",
	"-X k8s.io/component-base/version.gitMinor=37",
	"-X k8s.io/client-go/pkg/version.gitVersion=" + KubernetesVersion,
	"-X k8s.io/client-go/pkg/version.gitMajor=1",
	"-X k8s.io/client-go/pkg/version.gitMinor=37",
}, " ")

var components = []*component{
	{
		key: "etcd", module: "go.etcd.io/etcd/server/v3", version: EtcdVersion,
		imports: []string{"go.etcd.io/etcd/server/v3"},
		pkgs:    []string{"go.etcd.io/etcd/server/v3"},
		bins:    []string{Etcd},
		eta:     "~3 min",
	},
	{
		key: "kubernetes", module: "k8s.io/kubernetes", version: KubernetesVersion,
		imports: []string{
			"k8s.io/kubernetes/cmd/kube-apiserver",
			"k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler",
			"k8s.io/kubectl/pkg/cmd",
		},
		pkgs: []string{
			"k8s.io/kubernetes/cmd/kube-apiserver",
			"k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler",
			"k8s.io/kubernetes/cmd/kubectl",
		},
		bins:            []string{KubeAPIServer, KubeControllerManager, KubeScheduler, Kubectl},
		ldflags:         k8sLdflags,
		stagingReplaces: true,
		eta:             "~10 min",
	},
	{
		key: "kwok", module: "sigs.k8s.io/kwok", version: KwokVersion,
		imports: []string{"sigs.k8s.io/kwok/cmd/kwok"},
		pkgs:    []string{"sigs.k8s.io/kwok/cmd/kwok"},
		bins:    []string{Kwok},
		extra:   []string{KwokStagesFile},
		eta:     "~3 min",
		post:    writeKwokStages,
	},
	{
		key: "prometheus", module: "github.com/prometheus/prometheus", version: PrometheusVersion,
		imports: []string{"github.com/prometheus/prometheus/cmd/prometheus"},
		pkgs:    []string{"github.com/prometheus/prometheus/cmd/prometheus"},
		bins:    []string{Prometheus},
		tags:    "remove_all_sd",
		eta:     "~5 min",
	},
	{
		key: "source-controller", module: "github.com/fluxcd/source-controller", version: FluxVersion,
		bins: []string{SourceController}, extra: []string{SourceControllerCRDs},
		ownModule: true,
		modReplaces: []string{
			// The module replaces its api with ./api, which a module zip does not hold.
			"github.com/fluxcd/source-controller/api=github.com/fluxcd/source-controller/api@" + FluxVersion,
			// v0.18.3, which the module requires, is refused by the module proxy.
			"github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0",
		},
		eta:  "~4 min",
		post: fluxCRDs("github.com/fluxcd/source-controller", SourceControllerCRDs),
	},
	{
		key: "kustomize-controller", module: "github.com/fluxcd/kustomize-controller", version: FluxVersion,
		bins: []string{KustomizeController}, extra: []string{KustomizeControllerCRDs},
		ownModule: true,
		modReplaces: []string{
			"github.com/fluxcd/kustomize-controller/api=github.com/fluxcd/kustomize-controller/api@" + FluxVersion,
		},
		eta:  "~4 min",
		post: fluxCRDs("github.com/fluxcd/kustomize-controller", KustomizeControllerCRDs),
	},
}

func componentFor(name string) (*component, error) {
	for _, c := range components {
		if slices.Contains(c.bins, name) || slices.Contains(c.extra, name) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unknown control-plane binary %q (known: %s)", name, strings.Join(AllBinaries, ", "))
}

// CacheDir is where built binaries live: $HERALD_CACHE_DIR/herald/controlplane,
// else the user cache dir.
func CacheDir() (string, error) {
	base := os.Getenv("HERALD_CACHE_DIR")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("no cache dir (set HERALD_CACHE_DIR): %w", err)
		}
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "herald", "controlplane"), nil
}

func (c *component) dir(cache string) string {
	return filepath.Join(cache, c.key+"-"+c.version)
}

func (c *component) complete(dir string) bool {
	for _, f := range append(slices.Clone(c.bins), c.extra...) {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// progress prints timestamped progress lines.
type progress struct {
	out   io.Writer
	start time.Time
}

func newProgress(out io.Writer) *progress {
	if out == nil {
		out = io.Discard
	}
	return &progress{out: out, start: time.Now()}
}

func (p *progress) printf(format string, args ...any) {
	fmt.Fprintf(p.out, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Build makes sure the named binaries (all of them when none are named) are
// in the cache, building what is missing, and returns the path of each.
func Build(ctx context.Context, out io.Writer, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		names = AllBinaries
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	p := newProgress(out)
	paths := map[string]string{}
	var todo []*component
	for _, n := range names {
		c, err := componentFor(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(todo, c) {
			todo = append(todo, c)
		}
		paths[n] = filepath.Join(c.dir(cache), n)
	}
	for _, c := range todo {
		if err := ensureComponent(ctx, p, cache, c); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func ensureComponent(ctx context.Context, p *progress, cache string, c *component) error {
	dir := c.dir(cache)
	if c.complete(dir) {
		return nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	// One builder per component at a time, across processes (go test runs
	// packages in parallel, and each may start a cluster).
	lock, err := os.OpenFile(filepath.Join(cache, "."+c.key+"-"+c.version+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		p.printf("waiting for another process building %s %s ...", strings.Join(c.bins, ", "), c.version)
		if err := flockCtx(ctx, lock); err != nil {
			return err
		}
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if c.complete(dir) {
		return nil
	}
	return buildComponent(ctx, p, cache, c)
}

func flockCtx(ctx context.Context, f *os.File) error {
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func buildComponent(ctx context.Context, p *progress, cache string, c *component) error {
	started := time.Now()
	p.printf("building %s (%s %s) — first build takes %s, later ones come from the cache ...",
		strings.Join(c.bins, ", "), c.module, c.version, c.eta)
	work, err := os.MkdirTemp("", "herald-build-"+c.key+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	modDir := filepath.Join(work, "mod")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(work, "build.log")

	pkgs := c.pkgs
	args := []string{"build", "-trimpath"}
	if c.ownModule {
		if err := prepareOwnModule(ctx, p, work, modDir, c); err != nil {
			return err
		}
		pkgs = []string{"."}
		args = append(args, "-mod=mod")
	} else if err := prepareToolsModule(ctx, p, work, modDir, logPath, c); err != nil {
		return err
	}

	out, err := os.MkdirTemp(cache, ".tmp-"+c.key+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out) // no-op once renamed
	if c.tags != "" {
		args = append(args, "-tags", c.tags)
	}
	if c.ldflags != "" {
		args = append(args, "-ldflags", c.ldflags)
	}
	if len(pkgs) == 1 {
		args = append(args, "-o", filepath.Join(out, c.bins[0]))
	} else {
		args = append(args, "-o", out+string(os.PathSeparator))
	}
	args = append(args, pkgs...)
	if c.ownModule {
		p.printf("go build %s@%s", c.module, c.version)
	} else {
		p.printf("go build %s", strings.Join(c.pkgs, " "))
	}
	if err := runGo(ctx, p, modDir, logPath, "go build", args...); err != nil {
		return err
	}
	if c.post != nil {
		if err := c.post(ctx, out); err != nil {
			return err
		}
	}
	if !c.complete(out) {
		return fmt.Errorf("build of %s finished without producing %s", c.key, strings.Join(append(c.bins, c.extra...), ", "))
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return err
	}
	final := c.dir(cache)
	_ = os.RemoveAll(final) // an incomplete leftover from an older layout
	if err := os.Rename(out, final); err != nil {
		return fmt.Errorf("installing %s into the cache: %w", c.key, err)
	}
	p.printf("built %s in %s → %s", strings.Join(c.bins, ", "), time.Since(started).Round(time.Second), final)
	return nil
}

// prepareToolsModule writes a throwaway module into modDir that requires c.module and
// imports the packages to build, and resolves its dependencies.
func prepareToolsModule(ctx context.Context, p *progress, work, modDir, logPath string, c *component) error {
	var replaces []string
	if c.stagingReplaces {
		p.printf("reading the staging modules of %s@%s", c.module, c.version)
		gomod, err := downloadGoMod(ctx, work, c.module, c.version)
		if err != nil {
			return err
		}
		staging := ParseStagingReplaces(gomod)
		if len(staging) == 0 {
			return fmt.Errorf("found no ./staging replaces in the go.mod of %s@%s", c.module, c.version)
		}
		stagingVersion := "v0" + strings.TrimPrefix(c.version, "v1")
		for _, m := range staging {
			replaces = append(replaces, fmt.Sprintf("\t%s => %s %s\n", m, m, stagingVersion))
		}
	}
	var gomod strings.Builder
	fmt.Fprintf(&gomod, "module herald.local/%sbuild\n\ngo 1.26.0\n\nrequire %s %s\n", c.key, c.module, c.version)
	if len(replaces) > 0 {
		gomod.WriteString("\nreplace (\n" + strings.Join(replaces, "") + ")\n")
	}
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, imp := range c.imports {
		fmt.Fprintf(&tools, "\t_ %q\n", imp)
	}
	tools.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(modDir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(modDir, "tools.go"), []byte(tools.String()), 0o644); err != nil {
		return err
	}

	p.printf("resolving dependencies (go mod tidy)")
	return runGo(ctx, p, modDir, logPath, "go mod tidy", "mod", "tidy", "-e")
}

// prepareOwnModule copies c.module@c.version from the module cache into modDir (os.CopyFS
// makes the copy writable; the cache is read-only) and applies c.modReplaces to its go.mod.
func prepareOwnModule(ctx context.Context, p *progress, work, modDir string, c *component) error {
	p.printf("downloading %s@%s", c.module, c.version)
	src, err := moduleDir(ctx, work, c.module, c.version)
	if err != nil {
		return err
	}
	if err := os.CopyFS(modDir, os.DirFS(src)); err != nil {
		return fmt.Errorf("copying %s@%s: %w", c.module, c.version, err)
	}
	if len(c.modReplaces) == 0 {
		return nil
	}
	args := []string{"mod", "edit"}
	for _, r := range c.modReplaces {
		args = append(args, "-replace="+r)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modDir
	cmd.Env = goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go mod edit in %s@%s: %w\n%s", c.module, c.version, err, out)
	}
	return nil
}

// fluxCRDs returns a post-build step that writes the CRDs of a Flux controller (every
// file of config/crd/bases in its module, as one multi-document YAML) next to its binary.
func fluxCRDs(module, file string) func(ctx context.Context, outDir string) error {
	return func(ctx context.Context, outDir string) error {
		work, err := os.MkdirTemp("", "herald-flux-crds-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		dir, err := moduleDir(ctx, work, module, FluxVersion)
		if err != nil {
			return err
		}
		files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "bases", "*.yaml"))
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return fmt.Errorf("no CRDs under config/crd/bases of %s@%s", module, FluxVersion)
		}
		slices.Sort(files)
		var docs []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			docs = append(docs, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "---")))
		}
		return os.WriteFile(filepath.Join(outDir, file), []byte(strings.Join(docs, "\n---\n")+"\n"), 0o644)
	}
}

// goEnv is the environment of the throwaway-module go commands: the user's,
// without a workspace or a vendor/mod override that belongs to the caller.
func goEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOWORK=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off")
}

// runGo runs a go command in dir, appending its output to logPath, printing a
// heartbeat every 30 s, and returning the tail of the log on failure.
func runGo(ctx context.Context, p *progress, dir, logPath, what string, args ...string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s failed: %w\n%s", what, err, tailFile(logPath, 40))
			}
			return nil
		case <-tick.C:
			p.printf("  ... %s still running (%s)", what, time.Since(started).Round(time.Second))
		}
	}
}

// downloadGoMod returns the go.mod of module@version from the module proxy.
func downloadGoMod(ctx context.Context, dir, module, version string) ([]byte, error) {
	info, err := modDownload(ctx, dir, module, version)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(info.GoMod)
}

// moduleDir returns the extracted source directory of module@version.
func moduleDir(ctx context.Context, dir, module, version string) (string, error) {
	info, err := modDownload(ctx, dir, module, version)
	if err != nil {
		return "", err
	}
	return info.Dir, nil
}

type modInfo struct {
	GoMod string
	Dir   string
	Error string
}

func modDownload(ctx context.Context, dir, module, version string) (*modInfo, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = dir
	cmd.Env = goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info modInfo
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return nil, fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("go mod download %s@%s: %w\n%s%s", module, version, err, out, stderr.String())
	}
	if info.GoMod == "" || info.Dir == "" {
		return nil, fmt.Errorf("go mod download %s@%s: unexpected output %s", module, version, out)
	}
	return &info, nil
}

// ParseStagingReplaces returns, in order, the modules a k8s.io/kubernetes
// go.mod replaces with a directory under ./staging/ ("k8s.io/api =>
// ./staging/src/k8s.io/api"), both in replace blocks and single lines.
func ParseStagingReplaces(gomod []byte) []string {
	var mods []string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "replace") && strings.TrimSpace(strings.TrimPrefix(line, "replace")) == "(":
			inBlock = true
			continue
		case strings.HasPrefix(line, "replace "):
			line = strings.TrimSpace(strings.TrimPrefix(line, "replace "))
		case !inBlock:
			continue
		}
		left, right, ok := strings.Cut(line, "=>")
		if !ok {
			continue
		}
		lf := strings.Fields(left)
		rf := strings.Fields(right)
		if len(lf) == 0 || len(rf) != 1 {
			continue
		}
		if strings.HasPrefix(rf[0], "./staging/") && !slices.Contains(mods, lf[0]) {
			mods = append(mods, lf[0])
		}
	}
	return mods
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- last lines of " + path + " ---\n" + strings.Join(lines, "\n")
}

// RepoRoot walks up from the working directory to the directory holding the
// go.mod of this repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/herald-rollouts/herald")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the herald repository (no go.mod of github.com/herald-rollouts/herald above the working directory)")
		}
		dir = parent
	}
}

// BinDir makes sure the named binaries (the control plane without Prometheus
// when none are named) are built, and returns a directory of symlinks to
// them: bin/controlplane in the repository when run inside it (this is what
// KUBEBUILDER_ASSETS points to), else a directory in the cache.
func BinDir(ctx context.Context, out io.Writer, names ...string) (string, error) {
	if len(names) == 0 {
		names = ControlPlaneBinaries
	}
	paths, err := Build(ctx, out, names...)
	if err != nil {
		return "", err
	}
	var dir string
	if root, err := RepoRoot(); err == nil {
		dir = filepath.Join(root, "bin", "controlplane")
	} else {
		cache, err := CacheDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(cache, "bin")
	}
	if slices.Contains(names, Kwok) {
		c, _ := componentFor(Kwok)
		paths[KwokStagesFile] = filepath.Join(filepath.Dir(paths[Kwok]), c.extra[0])
	}
	if err := linkInto(dir, paths); err != nil {
		return "", err
	}
	return dir, nil
}

// linkInto points dir/<name> at each target, replacing stale links atomically.
func linkInto(dir string, targets map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, target := range targets {
		link := filepath.Join(dir, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		tmp := fmt.Sprintf("%s.tmp-%d", link, os.Getpid())
		_ = os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	return nil
}
