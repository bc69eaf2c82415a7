package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/herald-rollouts/herald/internal/helmchart"
)

func parseFlags(t *testing.T, args ...string) *options {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	o.flagger.recordSet(fs)
	o.enableWebhooks = false // no webhook name to derive in a unit test
	if err := o.validate(); err != nil {
		t.Fatalf("validate %q: %v", args, err)
	}
	return &o
}

// TestFlaggerFlags: Flagger's command lines parse, with Flagger's meaning; the flags Herald does
// not act on are reported with why.
func TestFlaggerFlags(t *testing.T) {
	o := parseFlags(t, "-log-level=warning", "-include-label-prefix=app.kubernetes.io,team", "-mesh-provider=contour",
		"-ingress-class=contour", "-enable-leader-election=true", "-leader-election-namespace=flagger-system",
		"-zap-encoding=console", "-threadiness=8", "-port=9090", "-kubeconfig-qps=50", "-kubeconfig-burst=60",
		"-cluster-name=prod", "-event-webhook=http://events.example/", "-control-loop-interval=5s", "-v=2",
		"-zap-replace-globals", "-no-cross-namespace-refs=true")
	if o.logLevel != "warn" || o.logEncoding != "console" || !o.leaderElect || o.leaderElectionNamespace != "flagger-system" {
		t.Errorf("log level %q, encoding %q, leader election %v in %q", o.logLevel, o.logEncoding, o.leaderElect, o.leaderElectionNamespace)
	}
	if o.metricsAddr != ":9090" {
		t.Errorf("-port=9090: metrics address %q, want :9090", o.metricsAddr)
	}
	if got := o.flagger.labelPrefixes(); strings.Join(got, "|") != "app.kubernetes.io|team" {
		t.Errorf("label prefixes %q", got)
	}
	if o.flagger.threadiness != 8 || o.flagger.clusterName != "prod" || !o.noCrossNamespaceRefs {
		t.Errorf("threadiness %d, cluster %q, no cross-namespace refs %v", o.flagger.threadiness, o.flagger.clusterName, o.noCrossNamespaceRefs)
	}
	env := map[string]string{}
	if got := o.flagger.eventWebhookURL(func(k string) string { return env[k] }); got != "http://events.example/" {
		t.Errorf("event webhook %q", got)
	}
	env["EVENT_WEBHOOK_URL"] = "http://from-env/"
	if got := o.flagger.eventWebhookURL(func(k string) string { return env[k] }); got != "http://from-env/" {
		t.Errorf("EVENT_WEBHOOK_URL must win: %q", got)
	}
	ignored := strings.Join(o.ignored(), "\n")
	for _, want := range []string{
		"-ingress-class=contour is ignored: Herald has no Contour or NGINX router",
		"-control-loop-interval=5s is ignored: Herald reacts to watch events",
		"-mesh-provider=contour is not implemented",
	} {
		if !strings.Contains(ignored, want) {
			t.Errorf("ignored flags:\n%s\nwant %q", ignored, want)
		}
	}
	if strings.Contains(ignored, "ingress-annotations-prefix") {
		t.Errorf("a flag the command line did not set is reported: %s", ignored)
	}

	// Defaults: Flagger's port and client limits; nothing copied to primaries.
	d := parseFlags(t)
	if d.metricsAddr != ":8080" || d.flagger.kubeconfigQPS != 100 || d.flagger.kubeconfigBurs != 250 || len(d.flagger.labelPrefixes()) != 0 {
		t.Errorf("defaults: metrics %q, qps %d, burst %d, prefixes %q", d.metricsAddr, d.flagger.kubeconfigQPS, d.flagger.kubeconfigBurs, d.flagger.labelPrefixes())
	}
	if len(d.ignored()) != 0 {
		t.Errorf("defaults report ignored flags: %q", d.ignored())
	}
	// -port keeps the host of -metrics-bind-address.
	if p := parseFlags(t, "-metrics-bind-address=127.0.0.1:8443", "-port=9797"); p.metricsAddr != "127.0.0.1:9797" {
		t.Errorf("metrics address %q", p.metricsAddr)
	}
}

// TestChartArgs: the command line Herald's chart renders for Flagger's values (its
// includeLabelPrefix and clusterName among them) parses, with their meaning.
func TestChartArgs(t *testing.T) {
	rendered, err := helmchart.Render("../../charts/herald", helmchart.Release{Name: "herald", Namespace: "herald-system"}, map[string]any{
		"includeLabelPrefix": "app.kubernetes.io,team", "clusterName": "prod-eu-1", "meshProvider": "kubernetes",
		"selectorLabels": "app,app.kubernetes.io/name", "namespace": "apps", "logLevel": "debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, obj := range rendered.Objects {
		if obj.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			if a, ok := c.(map[string]any)["args"].([]any); ok {
				for _, v := range a {
					args = append(args, v.(string))
				}
			}
		}
	}
	if len(args) == 0 {
		t.Fatal("no manager args rendered")
	}
	o := parseFlags(t, args...)
	if strings.Join(o.flagger.labelPrefixes(), ",") != "app.kubernetes.io,team" || o.flagger.clusterName != "prod-eu-1" {
		t.Errorf("chart args %q: prefixes %q, cluster %q", args, o.flagger.labelPrefixes(), o.flagger.clusterName)
	}
}
