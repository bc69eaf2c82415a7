package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// flaggerFlags are the flags of Flagger 1.44's cmd/flagger that Herald's own flags do not
// already cover under the same name: a Flagger Deployment's command line (its kustomize
// overlays, its Helm chart) starts Herald unchanged. Each is either implemented with Flagger's
// meaning or accepted and reported once at start-up as ignored, with the reason (ignored).
//
// The flags Herald shares with Flagger by name are bound in options.bind: -kubeconfig,
// -metrics-server, -log-level, -slack-*, -msteams-*, -namespace, -mesh-provider,
// -selector-labels, -leader-election-namespace, -enable-config-tracking, -version; klog's
// flags (-v, -vmodule, ...) are registered as Flagger registers them.
type flaggerFlags struct {
	master         string
	kubeconfigQPS  int
	kubeconfigBurs int
	port           string
	eventWebhook   string
	// includeLabelPrefix is the raw -include-label-prefix value (see labelPrefixes).
	includeLabelPrefix string
	threadiness        int
	zapReplaceGlobals  bool
	clusterName        string
	// Accepted and ignored (see ignored).
	controlLoopInterval      time.Duration
	ingressAnnotationsPrefix string
	ingressClass             string
	kubeconfigServiceMesh    string

	// set records which flags the command line set.
	set map[string]bool
}

// Flagger's defaults, where Herald takes them.
const (
	flaggerQPS                 = 100
	flaggerBurst               = 250
	flaggerControlLoop         = 10 * time.Second
	flaggerIngressPrefix       = "nginx.ingress.kubernetes.io"
	defaultThreadiness         = 8
	eventWebhookEnv            = "EVENT_WEBHOOK_URL"
	flaggerLeaderElectionAlias = "enable-leader-election"
)

// bindFlagger registers Flagger's flags on fs. -enable-leader-election and -zap-encoding are
// Flagger's names of Herald's -leader-elect and -log-encoding and share their variables.
func (o *options) bindFlagger(fs *flag.FlagSet) {
	f := &o.flagger
	fs.StringVar(&f.master, "master", "", "Flagger's -master: address of the Kubernetes API server; overrides the kubeconfig's.")
	fs.IntVar(&f.kubeconfigQPS, "kubeconfig-qps", flaggerQPS, "Flagger's -kubeconfig-qps: queries per second of Herald's client to the API server.")
	fs.IntVar(&f.kubeconfigBurs, "kubeconfig-burst", flaggerBurst, "Flagger's -kubeconfig-burst: request burst of Herald's client to the API server.")
	fs.IntVar(&f.kubeconfigQPS, "kube-api-qps", flaggerQPS, "Another name of -kubeconfig-qps.")
	fs.IntVar(&f.kubeconfigBurs, "kube-api-burst", flaggerBurst, "Another name of -kubeconfig-burst.")
	fs.StringVar(&f.port, "port", "", "Flagger's -port: port of /metrics and /healthz (plain HTTP, as Flagger's probes expect); sets the port of -metrics-bind-address, whose default, :8080, is Flagger's.")
	fs.StringVar(&f.eventWebhook, "event-webhook", "", "Flagger's -event-webhook: URL every event of a Canary without event hooks is posted to (env "+eventWebhookEnv+" wins when set).")
	fs.StringVar(&f.includeLabelPrefix, "include-label-prefix", "", "Flagger's -include-label-prefix: comma-separated prefixes of the target's labels and annotations copied to the primary and to the primary copies of configs and autoscalers; * copies all; none by default.")
	fs.IntVar(&f.threadiness, "threadiness", defaultThreadiness, "Flagger's -threadiness: Canaries reconciled at once.")
	fs.BoolVar(&f.zapReplaceGlobals, "zap-replace-globals", false, "Flagger's -zap-replace-globals: make Herald's logger zap's global logger too.")
	fs.StringVar(&f.clusterName, "cluster-name", "", "Flagger's -cluster-name: shown as the Cluster field of every alert.")
	fs.StringVar(&o.logEncoding, "zap-encoding", o.logEncoding, "Flagger's name of -log-encoding.")
	fs.BoolVar(&o.leaderElect, flaggerLeaderElectionAlias, o.leaderElect, "Flagger's name of -leader-elect.")
	fs.DurationVar(&f.controlLoopInterval, "control-loop-interval", flaggerControlLoop, "Flagger's -control-loop-interval; ignored: Herald reacts to watch events, and each Canary's analysis.interval paces its steps.")
	fs.StringVar(&f.ingressAnnotationsPrefix, "ingress-annotations-prefix", flaggerIngressPrefix, "Flagger's -ingress-annotations-prefix; ignored: Herald has no NGINX router.")
	fs.StringVar(&f.ingressClass, "ingress-class", "", "Flagger's -ingress-class; ignored: Herald has no Contour or NGINX router.")
	fs.StringVar(&f.kubeconfigServiceMesh, "kubeconfig-service-mesh", "", "Flagger's -kubeconfig-service-mesh; ignored: Herald writes routing objects to the cluster of -kubeconfig.")
	// Flagger registers klog's flags (-v, -vmodule, -logtostderr, ...); Herald's klog output
	// goes through its own logger, which -v raises for klog's callers as in Flagger.
	klog.InitFlags(fs)
}

// recordSet notes which flags the command line set (after fs.Parse).
func (f *flaggerFlags) recordSet(fs *flag.FlagSet) {
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
}

// validateFlagger checks Flagger's flags and applies what they change in Herald's own options:
// -port sets the port of the metrics address, and Flagger's log level "warning" is "warn".
func (o *options) validateFlagger() error {
	f := &o.flagger
	var errs []error
	if f.port != "" {
		n, err := strconv.Atoi(f.port)
		if err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("-port %q must be a port number", f.port))
		} else {
			host := ""
			if h, _, err := net.SplitHostPort(o.metricsAddr); err == nil {
				host = h
			}
			o.metricsAddr = net.JoinHostPort(host, f.port)
		}
	}
	if f.threadiness < 1 {
		errs = append(errs, fmt.Errorf("-threadiness %d must be at least 1", f.threadiness))
	}
	if f.kubeconfigQPS < 1 || f.kubeconfigBurs < 1 {
		errs = append(errs, errors.New("-kubeconfig-qps and -kubeconfig-burst must be at least 1"))
	}
	switch o.logLevel {
	case "warning": // Flagger's help names it (its logger then falls back to info)
		o.logLevel = "warn"
	case "fatal", "panic": // Flagger's; Herald never logs above error
		o.logLevel = "error"
	}
	if u := f.eventWebhookURL(os.Getenv); u != "" && !httpURL(u) {
		errs = append(errs, fmt.Errorf("-event-webhook (or %s) must be an absolute http or https URL", eventWebhookEnv))
	}
	return errors.Join(errs...)
}

func httpURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// eventWebhookURL is the global event webhook: EVENT_WEBHOOK_URL when set, else the flag.
func (f *flaggerFlags) eventWebhookURL(getenv func(string) string) string {
	if v := strings.TrimSpace(getenv(eventWebhookEnv)); v != "" {
		return v
	}
	return strings.TrimSpace(f.eventWebhook)
}

// labelPrefixes is -include-label-prefix as a list (Flagger splits it on commas).
func (f *flaggerFlags) labelPrefixes() []string { return splitList(f.includeLabelPrefix) }

// restConfig applies -master, -kubeconfig-qps and -kubeconfig-burst.
func (f *flaggerFlags) restConfig(cfg *rest.Config) {
	if f.master != "" {
		cfg.Host = f.master
	}
	cfg.QPS, cfg.Burst = float32(f.kubeconfigQPS), f.kubeconfigBurs
}

// ignored lists the flags the command line set that Herald accepts without acting on them,
// each with the reason, in a stable order; meshProvider is the -mesh-provider value.
func (o *options) ignored() []string {
	f := &o.flagger
	var out []string
	add := func(name, value, why string) {
		if f.set[name] {
			out = append(out, fmt.Sprintf("-%s=%s is ignored: %s", name, value, why))
		}
	}
	add("control-loop-interval", f.controlLoopInterval.String(), "Herald reacts to watch events at once, and each Canary's analysis.interval paces its steps")
	add("ingress-annotations-prefix", f.ingressAnnotationsPrefix, "Herald has no NGINX router (provider nginx is refused by the Canary webhook)")
	add("ingress-class", f.ingressClass, "Herald has no Contour or NGINX router, whose objects it would annotate (providers contour and nginx are refused by the Canary webhook)")
	add("kubeconfig-service-mesh", f.kubeconfigServiceMesh, "Herald writes VirtualServices and DestinationRules to the cluster of -kubeconfig; run it where the mesh's control plane reads them")
	if !slices.Contains(flaggerv1.SupportedProviders, o.meshProvider) {
		out = append(out, fmt.Sprintf("-mesh-provider=%s is not implemented: Canaries without spec.provider are refused by the Canary webhook and stalled (UnsupportedProvider); Herald routes with %s",
			o.meshProvider, strings.Join(flaggerv1.SupportedProviders, ", ")))
	}
	return out
}

// logIgnored reports, once at start-up, every Flagger flag Herald accepts without acting on it.
func (o *options) logIgnored(log logr.Logger) {
	for _, msg := range o.ignored() {
		log.Info("Flagger flag ignored: " + msg)
	}
}

// replaceGlobals makes log's zap logger zap's global one (-zap-replace-globals).
func (f *flaggerFlags) replaceGlobals(log logr.Logger) {
	if !f.zapReplaceGlobals {
		return
	}
	if u, ok := log.GetSink().(interface{ GetUnderlying() *zap.Logger }); ok {
		zap.ReplaceGlobals(u.GetUnderlying())
	}
}

// healthzHandler answers Flagger's liveness and readiness probes (GET /healthz on -port).
func healthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("OK"))
	})
}
