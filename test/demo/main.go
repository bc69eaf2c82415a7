// Command demo is `make demo`: on a local control plane with a real Prometheus, Herald
// delivers three releases of podinfo through Istio's VirtualService (or, with
// -provider=gatewayapi, `make demo PROVIDER=gatewayapi`, through a Gateway API HTTPRoute),
// with traffic from a simulated mesh or gateway: a good version promoted step by step, a bad
// one rolled back, and an A/B test. Everything it started is stopped at the end, or on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	keep := flag.Bool("keep", false, "keep the control plane, Prometheus, Herald and the traffic running until Ctrl-C")
	provider := flag.String("provider", "istio", "the router the releases go through: istio (a VirtualService) or gatewayapi (an HTTPRoute)")
	flag.Parse()
	if *provider != "istio" && *provider != "gatewayapi" {
		fmt.Fprintf(os.Stderr, "-provider %q: use istio or gatewayapi\n", *provider)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *keep, *provider)
	switch {
	case interrupted(ctx, err):
		fmt.Fprintf(os.Stderr, "\ndemo interrupted after %.0fs: everything it started has been stopped\n", time.Since(start).Seconds())
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo failed after %.0fs: %v\n", time.Since(start).Seconds(), err)
		os.Exit(1)
	}
}

// interrupted reports whether the demo was stopped by Ctrl-C. A Ctrl-C in a terminal also
// reaches the kubectl the demo is running, which may fail a moment before the signal
// cancels ctx: give it that moment.
func interrupted(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	select {
	case <-ctx.Done():
		return true
	case <-time.After(300 * time.Millisecond):
		return false
	}
}

func intro(provider string) {
	fmt.Println("Herald demo: a local Kubernetes control plane (no Docker), a real Prometheus, Herald, and a")
	if provider == "gatewayapi" {
		fmt.Println("simulated Gateway API implementation routing podinfo's HTTPRoute. Three releases follow: a good version promoted")
	} else {
		fmt.Println("simulated Istio mesh sending traffic to podinfo. Three releases follow: a good version promoted")
	}
	fmt.Println("step by step, a bad version rolled back, and an A/B test for users with the header x-canary: insider.")
	fmt.Println("It takes about 3 minutes once the control plane is built (Herald checks every 10 s).")
	fmt.Println("The very first run builds the control plane and Prometheus from the Go module proxy: about")
	fmt.Println("12-15 minutes on 2 cores, with progress shown; they are cached for later runs.")
	fmt.Println("Ctrl-C stops everything at any time.")
}

func run(ctx context.Context, keep bool, provider string) (err error) {
	intro(provider)
	d := &demo{provider: provider}
	defer d.stop()
	if err := d.startAll(ctx); err != nil {
		return err
	}
	// Registered after the stops, so it runs first, while the cluster is still there.
	defer func() {
		if err != nil && !interrupted(ctx, err) {
			d.diagnose()
		}
	}()
	for _, part := range []func(context.Context) error{d.install, d.goodVersion, d.badVersion, d.abTest, d.summary} {
		if err := part(ctx); err != nil {
			return err
		}
	}
	if keep {
		fmt.Printf("\n    Everything keeps running; try:\n      export KUBECONFIG=%s PATH=%s:$PATH\n", d.env.Kubeconfig, d.env.BinDir)
		fmt.Printf("      kubectl -n test get canaries,%s; open %s for Prometheus\n", d.routeResource(), d.env.PrometheusURL)
		fmt.Println("    Press Ctrl-C to stop.")
		<-ctx.Done()
	}
	return nil
}

// diagnose prints what explains a failed step: the end of Herald's log and the Canary's events.
func (d *demo) diagnose() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	step("Something went wrong; the end of Herald's log (%s):", d.heraldLog)
	fmt.Println(indentText(tail(d.heraldLog, 40)))
	step("The Canary's events")
	_ = d.kubectlTail(ctx, 20, "-n", namespace, "events", "--for", "canary/"+name)
}
