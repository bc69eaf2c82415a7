package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
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

	t.Run("simulated pod failures", func(t *testing.T) { testSimulatedFailures(ctx, t, cs, c.LogFile(Kwok)) })

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
		v, err := promQuery(c.PrometheusURL, `up{job="herald"}`)
		if err != nil {
			t.Fatal(err)
		}
		if v == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never scraped itself: %q", v)
		}
		time.Sleep(500 * time.Millisecond)
	}

	t.Run("kube-apiserver restart keeps data and port; clients reconnect", func(t *testing.T) {
		cs, err := c.Clientset()
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-restart", Namespace: "default"}, Data: map[string]string{"k": "v"}}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		apiURL, pid := c.APIServerURL, c.PIDs()[KubeAPIServer]
		down, err := c.RestartComponent(ctx, KubeAPIServer, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kube-apiserver back after %s", down.Round(100*time.Millisecond))
		if c.APIServerURL != apiURL || c.PIDs()[KubeAPIServer] == pid || ProcessAlive(pid) {
			t.Errorf("want a new process on %s (old pid %d gone), got %s pid %d", apiURL, pid, c.APIServerURL, c.PIDs()[KubeAPIServer])
		}
		got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "before-restart", metav1.GetOptions{})
		if err != nil || got.Data["k"] != "v" {
			t.Fatalf("the client made before the restart reads the ConfigMap written before it: %v %v", got, err)
		}
		if err := c.StartComponent(ctx, KubeAPIServer); err == nil {
			t.Error("starting a running component again is refused")
		}
	})

	t.Run("prometheus stop and start keeps its data", func(t *testing.T) {
		before, err := promQuery(c.PrometheusURL, `count_over_time(up{job="herald"}[10m])`)
		if err != nil || before == "" {
			t.Fatalf("samples before: %q %v", before, err)
		}
		if err := c.StopComponent(Prometheus); err != nil {
			t.Fatal(err)
		}
		if _, err := promQuery(c.PrometheusURL, `up`); err == nil {
			t.Fatal("prometheus answers while stopped")
		}
		if err := c.StopComponent(Prometheus); err == nil {
			t.Error("stopping a stopped component is refused")
		}
		if err := c.StartComponent(ctx, Prometheus); err != nil {
			t.Fatal(err)
		}
		after, err := promQuery(c.PrometheusURL, `count_over_time(up{job="herald"}[10m])`)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := strconv.Atoi(before)
		a, _ := strconv.Atoi(after)
		if a < b {
			t.Errorf("samples before the restart lost: %d before, %d after", b, a)
		}
	})
}

// promQuery runs an instant query and returns the value of its only result ("" when there is
// none).
func promQuery(base, query string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	if len(r.Data.Result) != 1 || len(r.Data.Result[0].Value) != 2 {
		return "", nil
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v, nil
}

// deployment is a Deployment of one podinfo container with the given pod
// template annotations.
func deployment(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "podinfod",
					Image: "ghcr.io/stefanprodan/podinfo:6.7.1",
				}}},
			},
		},
	}
}

// testSimulatedFailures checks the kwok stages behind SimulateAnnotation on a
// running cluster: pods look like a real kubelet's broken pods and stay so,
// while a Deployment without the annotation still becomes Ready. kwok's log
// (kwokLog) must show no stage that failed to apply: a broken template, or
// one of kwok's own stages fighting the simulation.
func testSimulatedFailures(ctx context.Context, t *testing.T, cs kubernetes.Interface, kwokLog string) {
	deps := map[string]*appsv1.Deployment{
		"pull":    deployment("pull", 2, map[string]string{SimulateAnnotation: SimulateImagePullError}),
		"crash":   deployment("crash", 2, map[string]string{SimulateAnnotation: SimulateCrashLoop}),
		"healthy": deployment("healthy", 2, map[string]string{SimulateAnnotation: "something-else"}),
		// A version that fails only as a Canary's primary: its primary's pods crash-loop, its
		// canary's become ready.
		"as-primary": deployment("as-primary", 2, map[string]string{SimulatePrimaryAnnotation: SimulateCrashLoop, PromotedRevisionAnnotation: "r1"}),
		"as-canary":  deployment("as-canary", 2, map[string]string{SimulatePrimaryAnnotation: SimulateCrashLoop}),
	}
	for _, d := range deps {
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	image := deps["pull"].Spec.Template.Spec.Containers[0].Image

	checkPull := func(p *corev1.Pod) string {
		if p.Status.Phase != corev1.PodPending {
			return fmt.Sprintf("phase %s", p.Status.Phase)
		}
		if len(p.Status.ContainerStatuses) != 1 {
			return fmt.Sprintf("%d container statuses", len(p.Status.ContainerStatuses))
		}
		st := p.Status.ContainerStatuses[0]
		w := st.State.Waiting
		if st.Ready || w == nil || w.Reason != "ImagePullBackOff" || w.Message != fmt.Sprintf("Back-off pulling image %q", image) {
			return fmt.Sprintf("container status %+v", st)
		}
		return ""
	}
	checkCrash := func(p *corev1.Pod) string {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Sprintf("phase %s", p.Status.Phase)
		}
		if len(p.Status.ContainerStatuses) != 1 {
			return fmt.Sprintf("%d container statuses", len(p.Status.ContainerStatuses))
		}
		st := p.Status.ContainerStatuses[0]
		w, last := st.State.Waiting, st.LastTerminationState.Terminated
		if st.Ready || w == nil || w.Reason != "CrashLoopBackOff" || st.RestartCount < 3 || last == nil || last.ExitCode != 1 {
			return fmt.Sprintf("container status %+v", st)
		}
		return ""
	}
	notReady := func(p *corev1.Pod) string {
		for _, c := range p.Status.Conditions {
			if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status != corev1.ConditionFalse {
				return fmt.Sprintf("condition %s=%s", c.Type, c.Status)
			}
		}
		return ""
	}
	// check polls until every pod of app passes ok (and there are want of
	// them), or fails the test after the timeout.
	check := func(app string, want int, ok func(*corev1.Pod) string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			if err != nil {
				t.Fatal(err)
			}
			bad := ""
			if len(pods.Items) != want {
				bad = fmt.Sprintf("%d pods, want %d", len(pods.Items), want)
			}
			for i := range pods.Items {
				if why := ok(&pods.Items[i]); why != "" && bad == "" {
					bad = fmt.Sprintf("pod %s: %s", pods.Items[i].Name, why)
				}
			}
			if bad == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", app, bad)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	both := func(a, b func(*corev1.Pod) string) func(*corev1.Pod) string {
		return func(p *corev1.Pod) string {
			if why := a(p); why != "" {
				return why
			}
			return b(p)
		}
	}
	ready := func(p *corev1.Pod) string {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Status.Phase == corev1.PodRunning {
				return ""
			}
		}
		return fmt.Sprintf("phase %s, not Ready", p.Status.Phase)
	}

	check("pull", 2, both(checkPull, notReady), 60*time.Second)
	check("crash", 2, both(checkCrash, notReady), 60*time.Second)
	check("healthy", 2, ready, 60*time.Second)
	check("as-primary", 2, both(checkCrash, notReady), 60*time.Second)
	check("as-canary", 2, ready, 60*time.Second)

	// The annotation on a pod that is already running and ready breaks it too.
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=healthy"})
	if err != nil {
		t.Fatal(err)
	}
	victim := pods.Items[0].Name
	patch := fmt.Sprintf(`{"metadata":{"labels":{"app":"victim"},"annotations":{%q:%q}}}`, SimulateAnnotation, SimulateCrashLoop)
	if _, err := cs.CoreV1().Pods("default").Patch(ctx, victim, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	check("victim", 1, both(checkCrash, notReady), 30*time.Second)
	check("healthy", 2, ready, 60*time.Second) // the ReplicaSet replaced the relabelled pod

	// They stay broken: no other stage makes them ready later.
	time.Sleep(3 * time.Second)
	check("pull", 2, both(checkPull, notReady), 0)
	check("crash", 2, both(checkCrash, notReady), 0)
	check("victim", 1, both(checkCrash, notReady), 0)
	for _, name := range []string{"pull", "crash"} {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.ReadyReplicas != 0 || d.Status.AvailableReplicas != 0 {
			t.Errorf("%s: readyReplicas %d availableReplicas %d, want 0", name, d.Status.ReadyReplicas, d.Status.AvailableReplicas)
		}
	}

	// Like a kubelet, kwok records a Warning event on each broken pod.
	deadline := time.Now().Add(30 * time.Second)
	for {
		events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range events.Items {
			if e.InvolvedObject.Kind == "Pod" && e.Type == corev1.EventTypeWarning {
				seen[e.Reason+": "+e.Message] = true
			}
		}
		if seen["Failed: Error: ImagePullBackOff"] && seen["BackOff: Back-off restarting failed container"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Warning events for the broken pods; saw %v", seen)
		}
		time.Sleep(500 * time.Millisecond)
	}

	b, err := os.ReadFile(kwokLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "failed to apply stage") {
			t.Errorf("kwok: %s", line)
		}
	}
}
