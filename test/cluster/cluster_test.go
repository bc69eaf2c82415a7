package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestClusterRollsOutDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts a real control plane (builds it first if not cached); run without -short")
	}
	t.Parallel() // runs beside TestClusterWithPrometheus: two clusters side by side
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	start := time.Now()
	c, err := Start(ctx, Options{Out: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster healthy after %s", time.Since(start).Round(100*time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	pids := c.PIDs()
	for _, name := range []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kwok} {
		if pids[name] == 0 {
			t.Errorf("no pid for %s", name)
		}
	}

	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "podinfo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "podinfo",
					Image: "ghcr.io/stefanprodan/podinfo:6.7.0",
					Ports: []corev1.ContainerPort{{ContainerPort: 9898}},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rollout := time.Now()
	var last string
	for {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "podinfo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		available := false
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
				available = true
			}
		}
		last = fmt.Sprintf("readyReplicas=%d available=%v", d.Status.ReadyReplicas, available)
		if d.Status.ReadyReplicas == 3 && available {
			break
		}
		if time.Since(rollout) > 90*time.Second {
			t.Fatalf("deployment not rolled out after 90s: %s", last)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("deployment rolled out in %s", time.Since(rollout).Round(100*time.Millisecond))
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=podinfo"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "kwok-node-0" || p.Status.PodIP == "" {
			t.Errorf("pod %s: phase %s node %q ip %q", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
		}
	}

	dir := c.Dir
	stopStart := time.Now()
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s", time.Since(stopStart).Round(100*time.Millisecond))
	for name, pid := range pids {
		if ProcessAlive(pid) || GroupAlive(pid) {
			t.Errorf("%s (pid %d) still alive after Stop", name, pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary state dir %s not removed: %v", dir, err)
	}
}

func TestClusterWithPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts a real control plane and Prometheus; run without -short")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Out: t.Output(), WithPrometheus: true, Nodes: 2, PrometheusScrapeInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if c.PrometheusURL == "" || len(c.Nodes) != 2 {
		t.Fatalf("PrometheusURL %q, nodes %v", c.PrometheusURL, c.Nodes)
	}
	// Point Prometheus at itself and wait for a successful scrape.
	u, _ := url.Parse(c.PrometheusURL)
	if err := c.SetPrometheusTargets(u.Host); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(`up{job="herald"}`))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data.Result) == 1 && len(r.Data.Result[0].Value) == 2 && r.Data.Result[0].Value[1] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never scraped itself: %+v", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
