package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// testClock is the fixed time of the tests: ages are computed from it.
var testClock = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// harness runs the plugin against a fake API server holding objs, at testClock.
type harness struct {
	t   *testing.T
	cl  client.WithWatch
	in  bytes.Buffer
	out bytes.Buffer
	err bytes.Buffer
	ns  string
}

func newHarness(t *testing.T, objs ...client.Object) *harness {
	t.Helper()
	h := &harness{t: t, ns: "test"}
	h.cl = fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&corev1.Event{}, "involvedObject.uid", func(o client.Object) []string {
			return []string{string(o.(*corev1.Event).InvolvedObject.UID)}
		}).
		WithIndex(&flaggerv1.Canary{}, "metadata.name", func(o client.Object) []string { return []string{o.GetName()} }).
		WithStatusSubresource(&flaggerv1.Canary{}).WithReturnManagedFields().Build()
	return h
}

// run runs the plugin with args and returns its exit code; stdout and stderr are in h.out and
// h.err (reset first).
func (h *harness) run(args ...string) int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.runCtx(ctx, args...)
}

// runCtx is run until ctx ends (for -w). Its output must be read only after it returned.
func (h *harness) runCtx(ctx context.Context, args ...string) int {
	h.t.Helper()
	h.out.Reset()
	h.err.Reset()
	e := &env{
		streams: genericiooptions.IOStreams{In: &h.in, Out: &h.out, ErrOut: &h.err},
		connect: func(flags *genericclioptions.ConfigFlags) (client.WithWatch, string, error) {
			if flags.Namespace != nil && *flags.Namespace != "" {
				return h.cl, *flags.Namespace, nil
			}
			return h.cl, h.ns, nil
		},
		now:  func() time.Time { return testClock },
		poll: 50 * time.Millisecond,
	}
	return run(ctx, args, e.streams, e)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}

func contains(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q not in:\n%s", sub, s)
	}
}
