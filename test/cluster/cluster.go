package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure Start.
type Options struct {
	// Dir holds the cluster's state (etcd data, certificates, kubeconfigs,
	// logs). Empty: a temporary directory, removed by Stop. A given Dir is
	// kept by Stop.
	Dir string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Nodes is the number of fake kwok nodes, named kwok-node-0, -1, ...
	// Zero means one.
	Nodes int
	// WithPrometheus also starts Prometheus, scraping PrometheusTargets.
	WithPrometheus bool
	// PrometheusTargets are host:port addresses scraped at /metrics (more can
	// be set later with SetPrometheusTargets).
	PrometheusTargets []string
	// PrometheusScrapeInterval defaults to 2s.
	PrometheusScrapeInterval time.Duration
	// IstioCRDs also installs Istio's networking CRDs (see IstioCRDs).
	IstioCRDs bool
	// Flux also installs Flux's CRDs and starts source-controller and kustomize-controller
	// (see StartFlux), building them first if they are not in the cache.
	Flux bool
	// GatewayAPICRDs also installs the Gateway API's standard CRDs (see GatewayAPICRDs).
	GatewayAPICRDs bool
	// StartTimeout bounds the wait for health; default 3 minutes.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; default 10s.
	StopGrace time.Duration
}

// Cluster is a running local control plane.
type Cluster struct {
	// Dir is the state directory.
	Dir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Config is the admin rest config.
	Config *rest.Config
	// APIServerURL is https://127.0.0.1:<port>.
	APIServerURL string
	// EtcdURL is http://127.0.0.1:<port>.
	EtcdURL string
	// PrometheusURL is http://127.0.0.1:<port> when started with Prometheus.
	PrometheusURL string
	// FluxArtifactsURL is source-controller's artifact server, http://127.0.0.1:<port>,
	// once Flux runs.
	FluxArtifactsURL string
	// BinDir holds the binaries (kubectl among them).
	BinDir string
	// Nodes are the names of the fake nodes.
	Nodes []string

	opts     Options
	progress *progress
	tempDir  bool
	pki      *pki
	bins     map[string]string
	mu       sync.Mutex
	procs    []*process
	// stopped are the components StopComponent stopped, kept to start them again.
	stopped map[string]*process
	// fluxStarted: StartFlux ran (or is running).
	fluxStarted bool
	stopOnce    sync.Once
	stopErr     error

	promConfig string
}

// Start builds what is missing, starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (and Prometheus when asked)
// on 127.0.0.1, and returns once the cluster is healthy: the apiserver is
// ready, the default ServiceAccount exists and every fake node is Ready.
// On error everything started is stopped again.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.PrometheusScrapeInterval <= 0 {
		o.PrometheusScrapeInterval = 2 * time.Second
	}
	c := &Cluster{opts: o, progress: newProgress(o.Out)}
	names := slices.Clone(ControlPlaneBinaries)
	if o.WithPrometheus {
		names = append(names, Prometheus)
	}
	if o.Flux {
		names = append(names, FluxBinaries...)
	}
	if c.bins, err = Build(ctx, o.Out, names...); err != nil {
		return nil, err
	}
	c.BinDir = filepath.Dir(c.bins[KubeAPIServer])

	if o.Dir == "" {
		removeAbandonedTempDirs()
		if c.Dir, err = os.MkdirTemp("", tempDirPrefix); err != nil {
			return nil, err
		}
		c.tempDir = true
		if err = os.WriteFile(c.path(ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return nil, err
		}
	} else {
		if c.Dir, err = filepath.Abs(o.Dir); err != nil {
			return nil, err
		}
		if err = os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	// A reused state dir starts from scratch: no etcd data or logs of an
	// earlier cluster.
	for _, stale := range []string{"etcd", "prometheus-data", "pki"} {
		if err = os.RemoveAll(c.path(stale)); err != nil {
			return nil, err
		}
	}
	for _, name := range AllBinaries {
		if err = os.RemoveAll(c.LogFile(name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()

	c.progress.printf("starting the control plane in %s", c.Dir)
	if err = c.writePKI(); err != nil {
		return nil, err
	}
	if err = c.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err = c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	for _, s := range []func(context.Context) error{c.startControllerManager, c.startScheduler, c.startKwok} {
		if err = s(ctx); err != nil {
			return nil, err
		}
	}
	if o.WithPrometheus {
		if err = c.startPrometheus(ctx); err != nil {
			return nil, err
		}
	}
	if err = c.waitHealthy(ctx); err != nil {
		return nil, err
	}
	if o.IstioCRDs {
		if err = c.InstallIstioCRDs(ctx); err != nil {
			return nil, err
		}
	}
	if o.Flux {
		if err = c.StartFlux(ctx); err != nil {
			return nil, err
		}
	}
	if o.GatewayAPICRDs {
		if err = c.InstallGatewayAPICRDs(ctx); err != nil {
			return nil, err
		}
	}
	c.progress.printf("cluster healthy: %s (kubeconfig %s)", c.APIServerURL, c.Kubeconfig)
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *Cluster) launch(name string, args ...string) (*process, error) {
	p, err := startProcess(name, c.bins[name], args, c.path(name+".log"), c.childEnv())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// forget drops a process that was stopped before the cluster came up (a
// port clash being retried).
func (c *Cluster) forget(p *process) {
	p.stop(c.opts.StopGrace)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			return
		}
	}
}

// withPortRetry launches a component on fresh ports, retrying when another
// process grabbed one of them first.
func (c *Cluster) withPortRetry(ctx context.Context, name string, nports int, launch func(ports []int) (*process, error), ready func(ctx context.Context, p *process) error) error {
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(nports)
		if err != nil {
			return err
		}
		p, err := launch(ports)
		if err != nil {
			return err
		}
		err = ready(ctx, p)
		if err == nil {
			return nil
		}
		if attempt < 4 && addrInUse(p.logPath) && ctx.Err() == nil {
			c.progress.printf("%s: port clash, retrying on other ports", name)
			c.forget(p)
			_ = os.Rename(p.logPath, p.logPath+"."+strconv.Itoa(attempt))
			continue
		}
		return err
	}
}

func (c *Cluster) writePKI() error {
	var err error
	if c.pki, err = newPKI(); err != nil {
		return err
	}
	pkiDir := c.path("pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "ca.crt"), c.pki.caPEM, 0o644); err != nil {
		return err
	}
	caKey, err := x509.MarshalPKCS8PrivateKey(c.pki.caKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "ca.key"), pemBlock("PRIVATE KEY", caKey), 0o600); err != nil {
		return err
	}
	serving, err := c.pki.issue("kube-apiserver", nil, []string{
		"127.0.0.1", "::1", "10.96.0.1", "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	})
	if err != nil {
		return err
	}
	if _, _, err := serving.write(pkiDir, "apiserver"); err != nil {
		return err
	}
	if _, _, err := serviceAccountKey(pkiDir); err != nil {
		return err
	}
	return nil
}

// UserKubeconfig writes a kubeconfig for user name (a client certificate with CN name and the
// given groups as organisations) into the state directory and returns its path. RBAC applies
// to that user like to any other, so a test can run a component with exactly its ClusterRole.
func (c *Cluster) UserKubeconfig(name string, groups ...string) (string, error) {
	file := c.path("kubeconfig-" + name)
	if err := c.clientKubeconfig(file, name, groups...); err != nil {
		return "", fmt.Errorf("writing kubeconfig for %s: %w", name, err)
	}
	return file, nil
}

// clientKubeconfig writes a kubeconfig with a client certificate for cn/orgs.
func (c *Cluster) clientKubeconfig(file, cn string, orgs ...string) error {
	kp, err := c.pki.issue(cn, orgs, nil)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["herald"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[cn] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.certPEM, ClientKeyData: kp.keyPEM}
	cfg.Contexts["herald"] = &clientcmdapi.Context{Cluster: "herald", AuthInfo: cn, Namespace: "default"}
	cfg.CurrentContext = "herald"
	return clientcmd.WriteToFile(*cfg, file)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	c.progress.printf("starting etcd")
	return c.withPortRetry(ctx, Etcd, 2, func(ports []int) (*process, error) {
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		c.EtcdURL = client
		return c.launch(Etcd,
			"--name=herald",
			"--data-dir="+c.path("etcd"),
			"--listen-client-urls="+client,
			"--advertise-client-urls="+client,
			"--listen-peer-urls="+peer,
			"--initial-advertise-peer-urls="+peer,
			"--initial-cluster=herald="+peer,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync=true",
			"--log-level=warn",
			"--snapshot-count=10000",
		)
	}, func(ctx context.Context, p *process) error {
		return poll(ctx, p, "etcd /health", func() (bool, error) {
			resp, err := http.Get(c.EtcdURL + "/health")
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"true"`), nil
		})
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	c.progress.printf("starting kube-apiserver")
	pkiDir := c.path("pki")
	return c.withPortRetry(ctx, KubeAPIServer, 1, func(ports []int) (*process, error) {
		c.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", ports[0])
		return c.launch(KubeAPIServer,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(ports[0]),
			"--etcd-servers="+c.EtcdURL,
			"--tls-cert-file="+filepath.Join(pkiDir, "apiserver.crt"),
			"--tls-private-key-file="+filepath.Join(pkiDir, "apiserver.key"),
			"--client-ca-file="+filepath.Join(pkiDir, "ca.crt"),
			"--service-account-key-file="+filepath.Join(pkiDir, "sa.pub"),
			"--service-account-signing-key-file="+filepath.Join(pkiDir, "sa.key"),
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-cluster-ip-range=10.96.0.0/12",
			"--authorization-mode=Node,RBAC",
			"--allow-privileged=true",
			"--endpoint-reconciler-type=none",
			"--profiling=false",
			"--v=0",
		)
	}, func(ctx context.Context, p *process) error {
		if err := c.clientKubeconfig(c.path("kubeconfig"), "herald-admin", "system:masters"); err != nil {
			return err
		}
		c.Kubeconfig = c.path("kubeconfig")
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		if err != nil {
			return err
		}
		cfg.QPS, cfg.Burst = 100, 200
		c.Config = cfg
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return err
		}
		return poll(ctx, p, "kube-apiserver /readyz", func() (bool, error) {
			resp, err := hc.Get(c.APIServerURL + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	})
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	c.progress.printf("starting kube-controller-manager")
	kc := c.path("controller-manager.kubeconfig")
	if err := c.clientKubeconfig(kc, "system:kube-controller-manager"); err != nil {
		return err
	}
	pkiDir := c.path("pki")
	_, err := c.launch(KubeControllerManager,
		"--kubeconfig="+kc,
		"--authentication-kubeconfig="+kc,
		"--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+filepath.Join(pkiDir, "sa.key"),
		"--root-ca-file="+filepath.Join(pkiDir, "ca.crt"),
		"--cluster-signing-cert-file="+filepath.Join(pkiDir, "ca.crt"),
		"--cluster-signing-key-file="+filepath.Join(pkiDir, "ca.key"),
		"--service-cluster-ip-range=10.96.0.0/12",
		"--controllers=*", // no cloud controllers are left in kube-controller-manager
		"--profiling=false",
		"--v=0",
	)
	return err
}

func (c *Cluster) startScheduler(ctx context.Context) error {
	c.progress.printf("starting kube-scheduler")
	kc := c.path("scheduler.kubeconfig")
	if err := c.clientKubeconfig(kc, "system:kube-scheduler"); err != nil {
		return err
	}
	_, err := c.launch(KubeScheduler,
		"--kubeconfig="+kc,
		"--authentication-kubeconfig="+kc,
		"--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--profiling=false",
		"--v=0",
	)
	return err
}

func (c *Cluster) startKwok(ctx context.Context) error {
	c.progress.printf("starting kwok")
	kc := c.path("kwok.kubeconfig")
	if err := c.clientKubeconfig(kc, "kwok", "system:masters"); err != nil {
		return err
	}
	stages := c.path(KwokStagesFile)
	if err := writeClusterKwokStages(filepath.Join(filepath.Dir(c.bins[Kwok]), KwokStagesFile), stages); err != nil {
		return err
	}
	return c.withPortRetry(ctx, Kwok, 1, func(ports []int) (*process, error) {
		return c.launch(Kwok,
			"--kubeconfig="+kc,
			"--config="+stages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector="+KwokNodeSelector,
			"--node-lease-duration-seconds=40",
			"--cidr=10.244.0.0/16",
			"--node-ip=127.0.0.1", // apiserver→"kubelet" traffic (logs, exec) stays on loopback
			"--server-address=127.0.0.1:"+strconv.Itoa(ports[0]),
		)
	}, func(ctx context.Context, p *process) error {
		// kwok has no cheap readiness signal; a port clash shows within a second.
		select {
		case <-p.done:
			return p.exitError()
		case <-time.After(1500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

func (c *Cluster) waitHealthy(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	for i := 0; i < c.opts.Nodes; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		if err := CreateNode(ctx, cs, name); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	c.progress.printf("waiting for the default ServiceAccount and %d Ready node(s)", len(c.Nodes))
	return pollAll(ctx, c, "default ServiceAccount and Ready nodes", func() (bool, error) {
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		for _, n := range c.Nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || !nodeReady(node) {
				return false, nil
			}
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status != corev1.ConditionTrue {
				return false
			}
			for _, t := range n.Spec.Taints {
				if t.Key == "node.kubernetes.io/not-ready" || t.Key == "node.kubernetes.io/unreachable" {
					return false
				}
			}
			return true
		}
	}
	return false
}

// poll calls check every 200ms until it is true, p exits, or ctx ends.
func poll(ctx context.Context, p *process, what string, check func() (bool, error)) error {
	for {
		ok, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w\n%s", what, ctx.Err(), tailFile(p.logPath, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pollAll is poll watching every process of the cluster.
func pollAll(ctx context.Context, c *Cluster, what string, check func() (bool, error)) error {
	for {
		ok, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		for _, p := range c.processes() {
			if p.exited() {
				return p.exitError()
			}
		}
		select {
		case <-ctx.Done():
			var tails []string
			for _, p := range c.processes() {
				tails = append(tails, tailFile(p.logPath, 15))
			}
			return fmt.Errorf("waiting for %s: %w\n%s", what, ctx.Err(), strings.Join(tails, "\n"))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) processes() []*process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*process(nil), c.procs...)
}

// PIDs returns the process id of each component (each is also the id of the
// component's process group).
func (c *Cluster) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range c.processes() {
		m[p.name] = p.pid()
	}
	return m
}

// LogFile returns the log file of a component ("kube-apiserver", "etcd", ...).
func (c *Cluster) LogFile(component string) string { return c.path(component + ".log") }

// Clientset returns a clientset with admin rights.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.Config)
}

// Stop terminates every process the cluster started (SIGTERM, SIGKILL after
// the grace period), waits for them, and removes a temporary state directory.
// It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		procs := c.processes()
		var etcd []*process
		var wg sync.WaitGroup
		for _, p := range procs {
			if p.name == Etcd {
				etcd = append(etcd, p)
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.stop(c.opts.StopGrace) }()
		}
		wg.Wait()
		for _, p := range etcd {
			p.stop(c.opts.StopGrace)
		}
		var errs []error
		for _, p := range procs {
			if GroupAlive(p.pid()) {
				errs = append(errs, fmt.Errorf("%s (pid %d) still running after stop", p.name, p.pid()))
			}
		}
		if c.tempDir && len(errs) == 0 {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

const (
	tempDirPrefix = "herald-cluster-"
	ownerFile     = "owner.pid"
)

// removeAbandonedTempDirs deletes the temporary state of clusters whose
// process was killed before it could Stop.
func removeAbandonedTempDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && !ProcessAlive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}
