package faults

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// timeline is the run's log of what happened when: faults, replicas, releases, violations.
// It is written to a file as it grows (the run's directory keeps it for a failed run) and
// printed in the report.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	lines []string
	file  *os.File
}

func newTimeline(path string) *timeline {
	f, _ := os.Create(path)
	return &timeline{start: time.Now(), file: f}
}

// at is the offset of t from the start of the run, as the timeline prints it.
func (l *timeline) at(t time.Time) string {
	return fmt.Sprintf("%7.1fs", t.Sub(l.start).Seconds())
}

func (l *timeline) add(format string, args ...any) {
	l.addAt(time.Now(), format, args...)
}

func (l *timeline) addAt(t time.Time, format string, args ...any) {
	line := l.at(t) + "  " + fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if l.file != nil {
		fmt.Fprintln(l.file, line)
	}
}

func (l *timeline) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// between returns the lines from a to b (offsets of the run), for a violation's context.
func (l *timeline) between(a, b time.Time) string {
	from, to := a.Sub(l.start).Seconds(), b.Sub(l.start).Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		var s float64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%fs", &s); err == nil && s >= from && s <= to {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func clientFor(kubeconfig string, scheme *runtime.Scheme) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return client.New(cfg, client.Options{Scheme: scheme})
}
