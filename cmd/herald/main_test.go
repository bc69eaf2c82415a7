package main

import (
	"errors"
	"flag"
	"os/exec"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) (*options, error) {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o, o.validate()
}

func TestPlainMetricsOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080", "0"} {
		if _, err := parse(t, "-metrics-secure=false", "-metrics-bind-address="+addr, "-enable-webhooks=false"); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "10.0.0.5:8080"} {
		_, err := parse(t, "-metrics-secure=false", "-metrics-bind-address="+addr, "-enable-webhooks=false")
		if err == nil || !strings.Contains(err.Error(), "-metrics-secure=false") || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, args := range [][]string{{"-metrics-secure"}, {"-metrics-secure=true"}} {
		o, err := parse(t, append(args, "-enable-webhooks=false")...)
		if err != nil {
			t.Fatal(err)
		}
		if m := o.metricsOptions(); !m.SecureServing || m.FilterProvider == nil || m.ExtraHandlers["/healthz"] != nil {
			t.Errorf("%v: /metrics is HTTPS behind the authentication filter: %+v", args, m)
		}
	}
	// Flagger's manifests give no -metrics-secure: Flagger's plain /metrics and /healthz on
	// its port, where its probes look.
	o, err := parse(t, "-enable-webhooks=false")
	if err != nil {
		t.Fatal(err)
	}
	if m := o.metricsOptions(); m.SecureServing || m.ExtraHandlers["/healthz"] == nil || m.BindAddress != ":8080" {
		t.Errorf("without -metrics-secure, Flagger's plain /metrics and /healthz on :8080: %+v", m)
	}
}

func TestNewFlagsDefaults(t *testing.T) {
	o, err := parse(t, "-enable-webhooks=false")
	if err != nil {
		t.Fatal(err)
	}
	if o.noCrossNamespaceRefs || !o.egressAllowLoopback || o.hookWorkers < 1 || o.eventHookWorkers < 1 {
		t.Errorf("defaults: %+v", o)
	}
	if _, err := parse(t, "-enable-webhooks=false", "-hook-workers=0"); err == nil {
		t.Error("-hook-workers=0 accepted")
	}
	if o.initializationRate != 5 || o.initializationBurst != 20 {
		t.Errorf("initialisation pace %g/s, burst %d; want the README's 5 and 20", o.initializationRate, o.initializationBurst)
	}
	for _, bad := range [][]string{{"-initialization-rate=-1"}, {"-initialization-rate=NaN"}, {"-initialization-rate=+Inf"}, {"-initialization-rate=1e-9"}, {"-initialization-burst=0"}} {
		_, err := parse(t, append([]string{"-enable-webhooks=false"}, bad...)...)
		if flag, _, _ := strings.Cut(bad[0], "="); err == nil || !strings.Contains(err.Error(), flag+" ") {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
	if o, err := parse(t, "-enable-webhooks=false", "-initialization-rate=0", "-initialization-burst=0"); err != nil || o.initializationRate != 0 {
		t.Errorf("-initialization-rate=0 (no pacing): %v", err)
	}
}

func TestPortAndSecureMetricsConflict(t *testing.T) {
	_, err := parse(t, "-enable-webhooks=false", "-metrics-secure", "-port=9090")
	if err == nil || !strings.Contains(err.Error(), "-port") || !strings.Contains(err.Error(), "-metrics-secure") {
		t.Fatalf("error %v, want one naming -port and -metrics-secure", err)
	}
	if _, err := parse(t, "-enable-webhooks=false", "-metrics-secure", "-metrics-bind-address=:9090"); err != nil {
		t.Fatalf("secure metrics on another port: %v", err)
	}
}

// TestHeraldLinksNoAPIServerLibrary keeps k8s.io/apiserver (and with it CEL, OpenTelemetry and
// gRPC) out of the binary: it was a fifth of its size and of the memory its pages take, and
// go.mod still lists it for other packages, so nothing else would notice it coming back.
func TestHeraldLinksNoAPIServerLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output() // only the list: go's own messages go to stderr
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"k8s.io/apiserver/", "github.com/google/cel-go/", "go.opentelemetry.io/", "google.golang.org/grpc/"} {
			if strings.HasPrefix(pkg+"/", heavy) {
				t.Errorf("cmd/herald links %s", pkg)
			}
		}
	}
}
