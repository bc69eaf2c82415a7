/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package jobs runs the load tester's background work (loads, asynchronous commands) at
// most once per key at a time: a rollout hook is called at every analysis step, and a
// load that is still running from the previous step must not be started again. Anyone who
// reaches the load tester can ask for work, so the work running at once is bounded.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrStopped is returned by Start once Stop has been called.
var ErrStopped = errors.New("the load tester is shutting down")

// ErrFull is matched (errors.Is) by the error of a Start refused by the limits.
var ErrFull = errors.New("the load tester is busy")

// Limits bound the work running at once; zero fields are no bound.
type Limits struct {
	// Jobs is the most jobs running at once.
	Jobs int
	// Workers is the most workers (the concurrency of loads) running at once.
	Workers int
}

// Key identifies a job: what kind of work, for which Canary, and which one of its kind
// (a load's spec key, a command line). A struct, so that no name can make two keys equal.
type Key struct {
	Namespace, Name string
	Kind            string
	ID              string
}

// Registry tracks running jobs by key. The zero value is not usable; call New.
type Registry struct {
	base    context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	limits  Limits

	mu      sync.Mutex
	running map[Key]int // the workers of each running job
	workers int         // their sum
	held    int         // blocking jobs running in their callers' goroutines (see Run)
	stopped bool
	wg      sync.WaitGroup
}

// New returns a Registry whose jobs are each cancelled after timeout (0: never) or when
// Stop is called, and that runs no more at once than limits allow.
func New(timeout time.Duration, limits Limits) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{base: ctx, cancel: cancel, timeout: timeout, limits: limits, running: map[Key]int{}}
}

// Limits are the registry's limits.
func (r *Registry) Limits() Limits { return r.limits }

// Start runs job, which uses workers workers, in the background under key unless a job
// with that key is running. It reports whether job was started; a job that the limits
// leave no room for is an error matching ErrFull, which says what is full. The job's
// context ends after the registry's timeout or at Stop; the key and the room it took are
// free again once job returns.
func (r *Registry) Start(key Key, workers int, job func(ctx context.Context)) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false, ErrStopped
	}
	if _, ok := r.running[key]; ok {
		return false, nil
	}
	if err := r.roomLocked(workers); err != nil {
		return false, err
	}
	r.running[key] = workers
	r.workers += workers
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, key)
			r.workers -= workers
			r.mu.Unlock()
		}()
		ctx, cancel := r.base, context.CancelFunc(func() {})
		if r.timeout > 0 {
			ctx, cancel = context.WithTimeout(r.base, r.timeout)
		}
		defer cancel()
		job(ctx)
	}()
	return true, nil
}

// roomLocked says whether a job of workers workers fits within the limits.
func (r *Registry) roomLocked(workers int) error {
	if n := len(r.running) + r.held; r.limits.Jobs > 0 && n >= r.limits.Jobs {
		return fmt.Errorf("%w: %d loads and commands are running, the most it runs at once (-max-loads %d); "+
			"try again when one has ended", ErrFull, n, r.limits.Jobs)
	}
	if r.limits.Workers > 0 && r.workers+workers > r.limits.Workers {
		return fmt.Errorf("%w: %d workers are running, and %d more would exceed -max-workers %d; "+
			"try again when a load has ended, or ask for fewer workers", ErrFull, r.workers, workers, r.limits.Workers)
	}
	return nil
}

// Run runs job in the caller's goroutine, counted against the limits like a background job
// while it runs (a blocking command holds a process and a connection as long as a
// background one): a job the limits leave no room for is not run, and the error matches
// ErrFull. The job's context ends with ctx, after the registry's timeout, or at Stop.
func (r *Registry) Run(ctx context.Context, job func(ctx context.Context)) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return ErrStopped
	}
	if err := r.roomLocked(0); err != nil {
		r.mu.Unlock()
		return err
	}
	r.held++
	r.wg.Add(1)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.held--
		r.mu.Unlock()
		r.wg.Done()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.base, cancel)
	defer stop()
	if r.timeout > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, r.timeout)
		defer cancelTimeout()
	}
	job(ctx)
	return nil
}

// Running reports whether a job with key is running.
func (r *Registry) Running(key Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[key]
	return ok
}

// Len is the number of running jobs, blocking ones included.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running) + r.held
}

// Stop cancels every job, refuses new ones, and waits for the running ones to return or
// for ctx to end.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
