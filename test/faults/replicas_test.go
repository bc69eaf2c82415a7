package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-rollouts/herald/test/harness"
)

// leaseKey is the Lease the replicas elect their leader with, in Herald's namespace (where its
// generated Role lets it use that Lease).
var leaseKey = types.NamespacedName{Namespace: harness.HeraldNamespace, Name: "herald-leader-election"}

// member is one of the two Herald replicas. A replica that exits (killed, or stopped after
// losing its lease, as client-go's leader election does) is started again by the
// supervisor, as a Deployment's pod would be: two replicas keep running.
type member struct {
	name        string
	h           *harness.Herald
	logPath     string
	incarnation int
	started     time.Time
}

// replicaSet runs two leader-elected Herald replicas behind one webhook address: a loopback
// proxy that a test can cut, so that the webhooks become unreachable while Herald runs on.
type replicaSet struct {
	binary, kubeconfig, dir string
	args                    []string
	proxy                   *harness.Proxy

	mu       sync.Mutex
	members  []*member
	paused   bool // stopped on purpose: the supervisor leaves them down
	restarts int
	stopSup  context.CancelFunc
	supDone  chan struct{}
}

func startReplicaSet(ctx context.Context, binary, kubeconfig, dir string, args ...string) (*replicaSet, error) {
	proxy, err := harness.StartProxy("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rs := &replicaSet{
		binary: binary, kubeconfig: kubeconfig, dir: dir, proxy: proxy,
		args:    append([]string{"--leader-elect", "--leader-election-namespace=" + leaseKey.Namespace}, args...),
		members: []*member{{name: "herald-a"}, {name: "herald-b"}},
	}
	for _, m := range rs.members {
		if err := rs.start(ctx, m); err != nil {
			rs.stop()
			return nil, err
		}
	}
	supCtx, cancel := context.WithCancel(context.Background())
	rs.stopSup, rs.supDone = cancel, make(chan struct{})
	go rs.supervise(supCtx)
	return rs, nil
}

// webhookURL is what both replicas register their webhook configurations with: the proxy.
func (rs *replicaSet) webhookURL() string {
	return fmt.Sprintf("https://localhost:%d", rs.proxy.Port())
}

// start starts (or restarts) one replica with a fresh log file and points the proxy at the
// live replicas.
func (rs *replicaSet) start(ctx context.Context, m *member) error {
	m.incarnation++
	m.logPath = filepath.Join(rs.dir, fmt.Sprintf("%s.%d.log", m.name, m.incarnation))
	out, err := os.Create(m.logPath)
	if err != nil {
		return err
	}
	h, err := harness.StartHeraldWith(ctx, harness.HeraldOptions{
		Binary: rs.binary, Kubeconfig: rs.kubeconfig, Out: out, WebhookURL: rs.webhookURL(), Args: rs.args,
	})
	if err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w\n%s", m.name, err, tail(m.logPath, 40))
	}
	rs.mu.Lock()
	m.h, m.started = h, time.Now()
	rs.mu.Unlock()
	rs.updateProxy()
	if log != nil {
		log.add("%s #%d started (pid %d)", m.name, m.incarnation, h.Pid())
	}
	return nil
}

func (rs *replicaSet) updateProxy() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var addrs []string
	for _, m := range rs.members {
		if m.h != nil && !m.h.Exited() {
			addrs = append(addrs, m.h.WebhookListen)
		}
	}
	rs.proxy.SetBackends(addrs...)
}

// supervise restarts replicas that exited, unless the set is paused.
func (rs *replicaSet) supervise(ctx context.Context) {
	defer close(rs.supDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		rs.mu.Lock()
		paused := rs.paused
		var dead []*member
		for _, m := range rs.members {
			if m.h != nil && m.h.Exited() {
				dead = append(dead, m)
			}
		}
		rs.mu.Unlock()
		if paused {
			continue
		}
		for _, m := range dead {
			log.add("%s #%d exited: %s", m.name, m.incarnation, lastLines(m.logPath, 2))
			rs.mu.Lock()
			rs.restarts++
			rs.mu.Unlock()
			rs.updateProxy()
			for ctx.Err() == nil {
				startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
				err := rs.start(startCtx, m)
				cancel()
				if err == nil {
					break
				}
				log.add("%s did not start again: %v", m.name, firstLine(err.Error()))
				time.Sleep(time.Second)
			}
		}
	}
}

// leader returns the replica that leads: the one whose leader-election gauge is 1, while the
// Lease names a holder it renews. Nil when there is none (an election in progress).
func (rs *replicaSet) leader(ctx context.Context) *member {
	var lease coordinationv1.Lease
	if err := k8s.Get(ctx, leaseKey, &lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return nil
	}
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil &&
		time.Since(lease.Spec.RenewTime.Time) > time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second {
		return nil // expired: the holder is gone
	}
	type live struct {
		m *member
		h *harness.Herald
	}
	var candidates []live
	rs.mu.Lock()
	for _, m := range rs.members {
		if m.h != nil && !m.h.Exited() {
			candidates = append(candidates, live{m, m.h})
		}
	}
	rs.mu.Unlock()
	for _, c := range candidates {
		if leads(c.h.MetricsURL) {
			return c.m
		}
	}
	return nil
}

// leads reads controller-runtime's leader_election_master_status gauge of one replica.
func leads(metricsURL string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(metricsURL)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.Contains(line, `name="herald-leader-election"`) {
			return strings.HasSuffix(strings.TrimSpace(line), " 1")
		}
	}
	return false
}

// waitLeader waits for a leader and returns it.
func (rs *replicaSet) waitLeader(ctx context.Context, timeout time.Duration) *member {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if m := rs.leader(ctx); m != nil {
			return m
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// killLeader SIGKILLs the leader (nothing is released: the other replica takes over when the
// lease expires) and lets the supervisor start it again. It returns the killed replica's
// name and incarnation.
func (rs *replicaSet) killLeader(ctx context.Context) (string, error) {
	m := rs.waitLeader(ctx, 30*time.Second)
	if m == nil {
		return "", fmt.Errorf("no leader to kill")
	}
	rs.mu.Lock()
	who, h := fmt.Sprintf("%s #%d", m.name, m.incarnation), m.h
	rs.mu.Unlock()
	h.Kill()
	return who, nil
}

// pause stops both replicas (SIGTERM) and keeps them down until resume.
func (rs *replicaSet) pause() {
	rs.mu.Lock()
	rs.paused = true
	members := append([]*member(nil), rs.members...)
	rs.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.h.Stop() }()
	}
	wg.Wait()
	rs.updateProxy()
	log.add("both Herald replicas stopped")
}

// resume starts both replicas again.
func (rs *replicaSet) resume(ctx context.Context) error {
	for _, m := range rs.members {
		if m.h != nil && !m.h.Exited() {
			continue
		}
		if err := rs.start(ctx, m); err != nil {
			return err
		}
	}
	rs.mu.Lock()
	rs.paused = false
	rs.mu.Unlock()
	return nil
}

func (rs *replicaSet) stop() {
	if rs.stopSup != nil {
		rs.stopSup()
		<-rs.supDone
	}
	rs.mu.Lock()
	rs.paused = true
	members := append([]*member(nil), rs.members...)
	rs.mu.Unlock()
	for _, m := range members {
		if m.h != nil {
			m.h.Stop()
		}
	}
	_ = rs.proxy.Close()
}

// tails returns the last lines of every replica's current log.
func (rs *replicaSet) tails(n int) string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var b strings.Builder
	for _, m := range rs.members {
		fmt.Fprintf(&b, "==> %s\n%s\n", m.logPath, tail(m.logPath, n))
	}
	return b.String()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLines(path string, n int) string {
	return strings.ReplaceAll(tail(path, n), "\n", " | ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
