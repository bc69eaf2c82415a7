/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package commands runs the external commands of the load tester's cmd, bash, helm and
// kubectl tasks, and decides which ones may run at all. Whoever can reach the load
// tester can send it a hook payload, so a command runs only when it matches an
// allow-list given by the operator at start-up; the default list is empty.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// MaxOutput is how much of a command's output is kept (the rest is dropped): output is
// logged and returned in responses, and a chatty command must not fill the memory.
const MaxOutput = 1 << 20

// AllowList holds the patterns of the commands that may run. A nil or empty list allows
// nothing.
type AllowList struct {
	patterns []*regexp.Regexp
}

// NewAllowList compiles patterns; each one must match a whole command line (it is
// anchored at both ends). The error names every pattern that does not compile.
func NewAllowList(patterns []string) (*AllowList, error) {
	a := &AllowList{}
	var errs []error
	for _, p := range patterns {
		re, err := regexp.Compile(`^(?:` + p + `)$`)
		if err != nil {
			errs = append(errs, fmt.Errorf("allow-command pattern %q: %w", p, err))
			continue
		}
		a.patterns = append(a.patterns, re)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// Allows reports whether command matches a pattern.
func (a *AllowList) Allows(command string) bool {
	if a == nil {
		return false
	}
	for _, re := range a.patterns {
		if re.MatchString(command) {
			return true
		}
	}
	return false
}

// Len is the number of patterns.
func (a *AllowList) Len() int {
	if a == nil {
		return 0
	}
	return len(a.patterns)
}

// Output is what a command printed, each stream cut at MaxOutput.
type Output struct {
	// Stdout is the standard output.
	Stdout []byte
	// Combined is standard output and error, interleaved as written.
	Combined []byte
}

// Run runs argv (no shell unless argv names one) and waits for it. When ctx ends, the
// command and every process it started (its process group) are killed. The error says
// how the command ended; the output is returned in every case.
func Run(ctx context.Context, argv []string) (Output, error) {
	if len(argv) == 0 {
		return Output{}, errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A shell's children (hey, curl, ...) must die with it, so the command gets a process
	// group of its own and cancellation kills the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Pipes held open by grandchildren must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	stdout := &capped{}
	combined := &capped{}
	cmd.Stdout = multi{stdout, combined}
	cmd.Stderr = combined

	err := cmd.Run()
	out := Output{Stdout: stdout.Bytes(), Combined: combined.Bytes()}
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return out, fmt.Errorf("%s was stopped: %w", argv[0], context.Cause(ctx))
	default:
		return out, fmt.Errorf("%s: %w", argv[0], err)
	}
}

// capped keeps the first MaxOutput bytes written to it. Standard output and error are
// copied by two goroutines, so writes are serialised. It deliberately has no ReadFrom,
// which io.Copy would prefer to Write, bypassing the cap and the lock.
type capped struct {
	mu  sync.Mutex
	buf []byte
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := MaxOutput - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf
}

// multi writes to two writers that never fail.
type multi [2]*capped

func (m multi) Write(p []byte) (int, error) {
	_, _ = m[0].Write(p)
	return m[1].Write(p)
}
