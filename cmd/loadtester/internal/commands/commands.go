/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package commands runs the external commands of the load tester's cmd, bash, helm and
// kubectl tasks, and decides which ones may run at all, and how. Whoever can reach the
// load tester can send it a hook payload, so a command runs only when it matches an
// allow-list given by the operator at start-up; the default lists are empty.
//
// A pattern matched against text that a shell then interprets does not say what runs:
// 'touch \S+' matches "touch /tmp/x;echo${IFS}pwned>/tmp/pwned". So a command line that
// splits into plain words runs without a shell, its words as the argument vector, and the
// -allow-command patterns see those words (re-joined by shellwords.Join); a line that
// needs a shell runs with one only when it matches an -allow-shell-command pattern, which
// the operator gives separately and knowingly.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/herald-rollouts/herald/cmd/loadtester/internal/shellwords"
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
			errs = append(errs, fmt.Errorf("pattern %q: %w", p, err))
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

// Rules say which commands run, and whether through a shell.
type Rules struct {
	// Commands are the -allow-command patterns: commands run without a shell, matched
	// against their words as Join writes them.
	Commands *AllowList
	// ShellCommands are the -allow-shell-command patterns: command lines run by a shell,
	// matched against the text as sent.
	ShellCommands *AllowList
}

// Plan is a command that the rules let run.
type Plan struct {
	// Argv is what runs: the command's words, or a shell with -c and the line.
	Argv []string
	// Line is the command as the matching pattern saw it, for logs and messages.
	Line string
	// Shell is true when Argv is a shell running Line.
	Shell bool
}

// RefusedError is the error of a command that no pattern allows.
type RefusedError struct {
	// Line is the command as the patterns saw it.
	Line string
	// Reason says what the operator could allow, and how.
	Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("command %q refused: %s", e.Line, e.Reason) }

// PlanLine decides how a command line of a cmd or bash task runs. A line of plain words
// runs without a shell when its words match -allow-command, or with shell when its text
// matches -allow-shell-command. A line that needs a shell (a pipe, a list, a redirection,
// a substitution, a variable, a glob...) runs with shell -c only when its text matches
// -allow-shell-command. A line that does not split (an unterminated quote) is an error;
// a refusal is a *RefusedError.
func (r Rules) PlanLine(shell, line string) (Plan, error) {
	words, err := shellwords.SplitCommand(line)
	switch {
	case err == nil && len(words) == 0:
		return Plan{}, errors.New("the command is empty")
	case err == nil:
		joined := shellwords.Join(words)
		if r.Commands.Allows(joined) {
			return Plan{Argv: words, Line: joined}, nil
		}
		if r.ShellCommands.Allows(line) {
			return Plan{Argv: []string{shell, "-c", line}, Line: line, Shell: true}, nil
		}
		return Plan{}, &RefusedError{Line: joined, Reason: r.hint()}
	case errors.Is(err, shellwords.ErrNeedsShell):
		if r.ShellCommands.Allows(line) {
			return Plan{Argv: []string{shell, "-c", line}, Line: line, Shell: true}, nil
		}
		reason := fmt.Sprintf("it needs a shell (%v), and it matches none of the %d -allow-shell-command patterns; "+
			"-allow-command patterns only allow commands of plain words, which run without a shell", err, r.ShellCommands.Len())
		return Plan{}, &RefusedError{Line: line, Reason: reason}
	default:
		return Plan{}, err
	}
}

// PlanArgv decides whether argv, which runs without a shell, may run: its words, as Join
// writes them, must match -allow-command.
func (r Rules) PlanArgv(argv []string) (Plan, error) {
	joined := shellwords.Join(argv)
	if !r.Commands.Allows(joined) {
		return Plan{}, &RefusedError{Line: joined, Reason: r.hint()}
	}
	return Plan{Argv: argv, Line: joined}, nil
}

func (r Rules) hint() string {
	if r.Commands.Len() == 0 && r.ShellCommands.Len() == 0 {
		return "the load tester runs no commands unless it is started with -allow-command=<regexp> " +
			"(matched against the whole command, which runs without a shell); hey command lines need no allow-list"
	}
	return fmt.Sprintf("it matches none of the %d -allow-command patterns (each matched against the whole command)", r.Commands.Len())
}

// ErrNotInstalled is matched by the error of Installed.
var ErrNotInstalled = errors.New("not installed")

// Installed checks that program can be found, so that a missing binary is an answer at
// once rather than a background task that fails where nobody looks.
func Installed(program string) error {
	if _, err := exec.LookPath(program); err != nil {
		return fmt.Errorf("%s is %w in this load tester (%w)", program, ErrNotInstalled, err)
	}
	return nil
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

// LogTail is how much of a command's output goes into a log line: the end, where the
// error usually is. A log line of a mebibyte breaks log pipelines.
const LogTail = 4 << 10

// Tail returns the last n bytes of out as valid UTF-8, saying how much came before.
func Tail(out []byte, n int) string {
	if len(out) <= n {
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
	// Drop a rune cut in half at the start rather than print a replacement for it.
	tail := out[len(out)-n:]
	for i := 0; i < utf8.UTFMax && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	return fmt.Sprintf("[%d bytes before] ", len(out)-len(tail)) + strings.ToValidUTF8(string(tail), "\uFFFD")
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
