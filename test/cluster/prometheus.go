package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func (c *Cluster) writePrometheusConfig(targets []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", c.opts.PrometheusScrapeInterval, c.opts.PrometheusScrapeInterval)
	b.WriteString("scrape_configs:\n- job_name: herald\n  static_configs:\n  - targets: [")
	for i, t := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(t))
	}
	b.WriteString("]\n")
	tmp := c.promConfig + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.promConfig)
}

func (c *Cluster) startPrometheus(ctx context.Context) error {
	c.progress.printf("starting prometheus")
	c.promConfig = c.path("prometheus.yml")
	if err := c.writePrometheusConfig(c.opts.PrometheusTargets); err != nil {
		return err
	}
	return c.withPortRetry(ctx, Prometheus, 1, func(ports []int) (*process, error) {
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		c.PrometheusURL = "http://" + addr
		return c.launch(Prometheus,
			"--config.file="+c.promConfig,
			"--storage.tsdb.path="+c.path("prometheus-data"),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
	}, func(ctx context.Context, p *process) error {
		return poll(ctx, p, "prometheus /-/ready", func() (bool, error) {
			resp, err := http.Get(c.PrometheusURL + "/-/ready")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	})
}

// SetPrometheusTargets replaces the host:port addresses Prometheus scrapes
// and makes it reload its configuration.
func (c *Cluster) SetPrometheusTargets(targets ...string) error {
	if c.promConfig == "" {
		return fmt.Errorf("the cluster was started without Prometheus")
	}
	if err := c.writePrometheusConfig(targets); err != nil {
		return err
	}
	for _, p := range c.processes() {
		if p.name == Prometheus && !p.exited() {
			return syscall.Kill(p.pid(), syscall.SIGHUP)
		}
	}
	return fmt.Errorf("prometheus is not running")
}
