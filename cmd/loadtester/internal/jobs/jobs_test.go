/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package jobs

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestStartDeduplicatesWhileRunning(t *testing.T) {
	r := New(0, Limits{})
	release := make(chan struct{})
	var runs atomic.Int32
	job := func(context.Context) { runs.Add(1); <-release }

	if ok, err := r.Start(key("a"), 0, job); !ok || err != nil {
		t.Fatalf("first start: %v %v", ok, err)
	}
	if ok, _ := r.Start(key("a"), 0, job); ok {
		t.Error("a second job with the same key was started while the first runs")
	}
	if ok, _ := r.Start(key("b"), 0, job); !ok {
		t.Error("a job with another key was not started")
	}
	if !r.Running(key("a")) || r.Len() != 2 {
		t.Errorf("running: a=%v len=%d", r.Running(key("a")), r.Len())
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for r.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r.Running(key("a")) {
		t.Fatal("the key stays taken after the job returned")
	}
	done := make(chan struct{})
	if ok, _ := r.Start(key("a"), 0, func(context.Context) { runs.Add(1); close(done) }); !ok {
		t.Error("the key is not free once the job is over")
	}
	<-done
	if runs.Load() != 3 {
		t.Errorf("%d runs, want 3", runs.Load())
	}
}

func TestTimeoutAndStopCancelJobs(t *testing.T) {
	r := New(50*time.Millisecond, Limits{})
	ended := make(chan error, 1)
	r.Start(key("slow"), 0, func(ctx context.Context) { <-ctx.Done(); ended <- ctx.Err() })
	select {
	case err := <-ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("want the timeout, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job outlived the registry's timeout")
	}

	r = New(0, Limits{})
	r.Start(key("forever"), 0, func(ctx context.Context) { <-ctx.Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if r.Len() != 0 {
		t.Error("a job survived Stop")
	}
	if ok, err := r.Start(key("late"), 0, func(context.Context) {}); ok || !errors.Is(err, ErrStopped) {
		t.Errorf("start after Stop: %v %v", ok, err)
	}
}

func key(id string) Key { return Key{Namespace: "test", Name: "podinfo", Kind: "load", ID: id} }

// Keys are structs: names with separators in them cannot make two jobs one.
func TestKeysDoNotCollide(t *testing.T) {
	r := New(0, Limits{})
	release := make(chan struct{})
	defer close(release)
	job := func(context.Context) { <-release }
	for _, k := range []Key{{"a", "b/load/x", "load", "y"}, {"a/b", "load/x", "load", "y"}, {"a", "b", "load", "x/load/y"}} {
		if ok, err := r.Start(k, 0, job); !ok || err != nil {
			t.Errorf("%+v did not start: %v %v", k, ok, err)
		}
	}
}

func TestLimitsRefuseWorkBeyondThem(t *testing.T) {
	r := New(0, Limits{Jobs: 2, Workers: 10})
	release := make(chan struct{})
	job := func(context.Context) { <-release }
	if ok, err := r.Start(key("a"), 6, job); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	// A running key is answered as running, even when full.
	if ok, err := r.Start(key("a"), 6, job); ok || err != nil {
		t.Errorf("a again: %v %v", ok, err)
	}
	ok, err := r.Start(key("b"), 5, job)
	if ok || !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "-max-workers 10") {
		t.Errorf("b over the worker limit: %v %v", ok, err)
	}
	if ok, err := r.Start(key("c"), 4, job); !ok || err != nil {
		t.Errorf("c within the limits: %v %v", ok, err)
	}
	ok, err = r.Start(key("d"), 0, job)
	if ok || !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "-max-loads 2") {
		t.Errorf("d over the job limit: %v %v", ok, err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for r.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The room is given back when the jobs end.
	done := make(chan struct{})
	if ok, err := r.Start(key("e"), 10, func(context.Context) { close(done) }); !ok || err != nil {
		t.Errorf("e after the others ended: %v %v", ok, err)
	}
	<-done
}
