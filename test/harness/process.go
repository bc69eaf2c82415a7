package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"syscall"
	"time"
)

// ProcessOptions describe a binary to run as a child process.
type ProcessOptions struct {
	// Name names the process in errors.
	Name string
	// Binary and Args are what runs.
	Binary string
	Args   []string
	// Out receives standard output and error.
	Out io.Writer
	// ReadyURL is polled until it answers 200.
	ReadyURL string
	// ReadyTimeout bounds the wait for ReadyURL (default 60 s).
	ReadyTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before it kills (default 10 s).
	StopGrace time.Duration
	// AfterExit, if set, runs once the process has exited (to remove its temporary files).
	AfterExit func()
}

// Process is a running child process, in its own process group, killed if the test or
// demo that started it dies.
type Process struct {
	cmd   *exec.Cmd
	done  chan struct{}
	grace time.Duration
}

// StartProcess starts o.Binary and returns once o.ReadyURL answers 200, or an error with
// the process's fate if it exits first or is not ready in time (it is stopped then).
func StartProcess(ctx context.Context, o ProcessOptions) (*Process, error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	cmd := exec.Command(o.Binary, o.Args...)
	cmd.Stdout, cmd.Stderr = o.Out, o.Out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Name, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), grace: o.StopGrace}
	go func() {
		_ = cmd.Wait()
		if o.AfterExit != nil {
			o.AfterExit()
		}
		close(p.done)
	}()

	deadline := time.Now().Add(o.ReadyTimeout)
	// A probe that hangs must not outlast the deadline.
	probe := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready: %v", o.Name, cmd.ProcessState)
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := probe.Get(o.ReadyURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, errors.New(o.Name + " was not ready within " + o.ReadyTimeout.String())
		}
	}
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to the stop grace for a clean exit, then kills the
// process. It may be called more than once.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
