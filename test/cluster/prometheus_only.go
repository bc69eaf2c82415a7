package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Targets are host:port addresses scraped at /metrics (more can be set later with
	// SetTargets).
	Targets []string
	// ScrapeInterval defaults to 1s.
	ScrapeInterval time.Duration
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// StartTimeout bounds the wait for readiness; default 1 minute (not counting a build).
	StartTimeout time.Duration
}

// PrometheusServer is a Prometheus process started without the rest of the control plane,
// for tests that only need a real query engine over known series.
type PrometheusServer struct {
	// URL is http://127.0.0.1:<port>.
	URL string
	c   *Cluster
}

// StartPrometheus builds Prometheus if it is not cached yet, starts it in a temporary
// directory on a free loopback port, scraping the targets, and returns once it is ready.
// Stop it with Stop.
func StartPrometheus(ctx context.Context, o PrometheusOptions) (_ *PrometheusServer, err error) {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = time.Minute
	}
	c := &Cluster{
		opts: Options{
			PrometheusTargets:        o.Targets,
			PrometheusScrapeInterval: o.ScrapeInterval,
			StopGrace:                5 * time.Second,
		},
		progress: newProgress(o.Out),
	}
	if c.bins, err = Build(ctx, o.Out, Prometheus); err != nil {
		return nil, err
	}
	// The same temporary-directory convention as Start, so that a killed test's state is
	// cleaned up by the next run.
	removeAbandonedTempDirs()
	if c.Dir, err = os.MkdirTemp("", tempDirPrefix); err != nil {
		return nil, err
	}
	c.tempDir = true
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if err = os.WriteFile(c.path(ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	if err = c.startPrometheus(ctx); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	return &PrometheusServer{URL: c.PrometheusURL, c: c}, nil
}

// SetTargets replaces the scraped addresses and makes Prometheus reload its configuration.
func (p *PrometheusServer) SetTargets(targets ...string) error {
	return p.c.SetPrometheusTargets(targets...)
}

// LogFile is the path of Prometheus's log.
func (p *PrometheusServer) LogFile() string { return p.c.LogFile(Prometheus) }

// Stop terminates Prometheus and removes its directory. It is safe to call more than once.
func (p *PrometheusServer) Stop() error { return p.c.Stop() }
