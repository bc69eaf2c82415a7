package cluster

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
)

// Fault injection: a running cluster's components can be stopped and started again, as an
// operator restarting a control-plane process (or a crash and its supervisor) would. A
// component comes back with exactly the flags, ports, certificates and data it had, so its
// clients only have to reconnect.

// StopComponent stops one component of a running cluster ("kube-apiserver", "prometheus",
// ...): SIGTERM to its process group, SIGKILL after the stop grace. StartComponent brings it
// back. Stopping a component that is not running is an error.
func (c *Cluster) StopComponent(name string) error {
	p := c.running(name)
	if p == nil {
		return fmt.Errorf("%s is not running", name)
	}
	p.stop(c.opts.StopGrace)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			break
		}
	}
	if c.stopped == nil {
		c.stopped = map[string]*process{}
	}
	c.stopped[name] = p
	return nil
}

// StartComponent starts a component that StopComponent stopped, with the same binary, flags
// and environment, appending to the same log, and returns once it is ready again (the
// apiserver's /readyz, Prometheus's /-/ready, etcd's /health; the others once they have run
// for a second without exiting).
func (c *Cluster) StartComponent(ctx context.Context, name string) error {
	c.mu.Lock()
	old := c.stopped[name]
	c.mu.Unlock()
	if old == nil {
		return fmt.Errorf("%s was not stopped by StopComponent", name)
	}
	p, err := startProcess(name, old.bin, old.args, old.logPath, old.env)
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.stopped, name)
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	ready, err := c.readiness(name)
	if err != nil {
		return err
	}
	if ready == nil {
		select {
		case <-p.done:
			return p.exitError()
		case <-time.After(time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return poll(ctx, p, name+" readiness after a restart", ready)
}

// RestartComponent stops a component, waits down, and starts it again (see StopComponent and
// StartComponent). It returns how long the component was not ready.
func (c *Cluster) RestartComponent(ctx context.Context, name string, down time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.StopComponent(name); err != nil {
		return 0, err
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return time.Since(start), ctx.Err()
	}
	err := c.StartComponent(ctx, name)
	return time.Since(start), err
}

// running returns the live process of a component, nil if there is none.
func (c *Cluster) running(name string) *process {
	for _, p := range c.processes() {
		if p.name == name && !p.exited() {
			return p
		}
	}
	return nil
}

// readiness returns the check that tells a component is serving, nil for components without
// a cheap signal.
func (c *Cluster) readiness(name string) (func() (bool, error), error) {
	get := func(hc *http.Client, url string) func() (bool, error) {
		return func() (bool, error) {
			resp, err := hc.Get(url)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		}
	}
	switch name {
	case KubeAPIServer:
		hc, err := rest.HTTPClientFor(c.Config)
		if err != nil {
			return nil, err
		}
		hc.Timeout = 5 * time.Second
		return get(hc, c.APIServerURL+"/readyz"), nil
	case Prometheus:
		return get(&http.Client{Timeout: 5 * time.Second}, c.PrometheusURL+"/-/ready"), nil
	case Etcd:
		return get(&http.Client{Timeout: 5 * time.Second}, c.EtcdURL+"/health"), nil
	}
	return nil, nil
}
