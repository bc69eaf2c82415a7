/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package commands

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAllowListMatchesWholeCommands(t *testing.T) {
	a, err := NewAllowList([]string{`curl -s http://podinfo-canary\.test:9898/healthz`, `helm test \S+ --cleanup`})
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]bool{
		"curl -s http://podinfo-canary.test:9898/healthz":           true,
		"curl -s http://podinfo-canary.test:9898/healthz; rm -rf /": false,
		"echo x; curl -s http://podinfo-canary.test:9898/healthz":   false,
		"helm test podinfo --cleanup":                               true,
		"helm test podinfo --cleanup --kubeconfig /etc/shadow":      false,
		"kubectl get pods": false,
	} {
		if got := a.Allows(cmd); got != want {
			t.Errorf("Allows(%q) = %v, want %v", cmd, got, want)
		}
	}
	var empty *AllowList
	if empty.Allows("true") || empty.Len() != 0 {
		t.Error("a nil allow-list allows something")
	}
	if _, err := NewAllowList([]string{"ok", "(unclosed", "[bad"}); err == nil ||
		!strings.Contains(err.Error(), `"(unclosed"`) || !strings.Contains(err.Error(), `"[bad"`) {
		t.Errorf("want an error naming both bad patterns, got %v", err)
	}
}

func TestRunReturnsOutputAndExitStatus(t *testing.T) {
	out, err := Run(context.Background(), []string{"sh", "-c", "echo out; echo err >&2"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Stdout) != "out\n" || !strings.Contains(string(out.Combined), "err") {
		t.Errorf("output: %q / %q", out.Stdout, out.Combined)
	}
	out, err = Run(context.Background(), []string{"sh", "-c", "echo failing; exit 3"})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || string(out.Combined) != "failing\n" {
		t.Errorf("failure: %v, %q", err, out.Combined)
	}
	if _, err := Run(context.Background(), []string{"no-such-binary-herald"}); err == nil ||
		!strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("missing binary: %v", err)
	}
}

func TestRunKillsTheProcessGroupWhenCancelled(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "survived")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The grandchild would write the marker after a second if it outlived the cancel.
	_, err := Run(ctx, []string{"sh", "-c", "(sleep 1; touch " + marker + ") & wait"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "was stopped") {
		t.Errorf("want a stopped error, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Run did not return soon after the cancellation")
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("a child of the cancelled command kept running")
	}
}

func TestRunCapsOutput(t *testing.T) {
	out, err := Run(context.Background(), []string{"sh", "-c", "head -c 3000000 /dev/zero"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Stdout) != MaxOutput || len(out.Combined) != MaxOutput {
		t.Errorf("kept %d/%d bytes, want %d", len(out.Stdout), len(out.Combined), MaxOutput)
	}
}

func TestPlanRunsPlainWordsWithoutAShell(t *testing.T) {
	plain, _ := NewAllowList([]string{`touch \S+`, `helm test \S+ --cleanup`})
	shell, _ := NewAllowList([]string{`curl -s http://x/ \| grep ok`})
	r := Rules{Commands: plain, ShellCommands: shell}

	p, err := r.PlanLine("bash", "touch /tmp/x")
	if err != nil || !slices.Equal(p.Argv, []string{"touch", "/tmp/x"}) || p.Shell {
		t.Errorf("plain: %+v %v", p, err)
	}
	var refused *RefusedError
	if _, err := r.PlanLine("bash", "touch /tmp/x;echo${IFS}pwned>/tmp/pwned"); !errors.As(err, &refused) ||
		!strings.Contains(err.Error(), "needs a shell") {
		t.Errorf("the reviewer's payload: %v", err)
	}
	p, err = r.PlanLine("sh", "curl -s http://x/ | grep ok")
	if err != nil || !p.Shell || !slices.Equal(p.Argv, []string{"sh", "-c", "curl -s http://x/ | grep ok"}) {
		t.Errorf("allowed shell line: %+v %v", p, err)
	}
	if _, err := r.PlanLine("sh", "curl -s http://x/ | grep ok; id"); !errors.As(err, &refused) {
		t.Errorf("longer shell line: %v", err)
	}
	// A word with a space is one word: it does not look like two to the pattern.
	if _, err := r.PlanArgv([]string{"helm", "test", "a --cleanup"}); !errors.As(err, &refused) ||
		!strings.Contains(err.Error(), `"helm test 'a --cleanup'"`) {
		t.Errorf("quoted word: %v", err)
	}
	if p, err := r.PlanArgv([]string{"helm", "test", "podinfo", "--cleanup"}); err != nil || p.Line != "helm test podinfo --cleanup" {
		t.Errorf("helm: %+v %v", p, err)
	}
	if _, err := r.PlanLine("sh", "echo 'unterminated"); err == nil || errors.As(err, &refused) {
		t.Errorf("a line that does not split is a plain error: %v", err)
	}
	if _, err := (Rules{}).PlanLine("sh", "true"); !errors.As(err, &refused) || !strings.Contains(err.Error(), "unless it is started with -allow-command") {
		t.Errorf("empty rules: %v", err)
	}
}

func TestTail(t *testing.T) {
	if got := Tail([]byte("short"), 10); got != "short" {
		t.Errorf("short: %q", got)
	}
	// "é" is two bytes: a cut in its middle drops the half.
	if got := Tail([]byte("abcé!"), 2); got != "[5 bytes before] !" {
		t.Errorf("cut rune: %q", got)
	}
	if got := Tail([]byte("abcdéf"), 3); got != "[4 bytes before] éf" {
		t.Errorf("whole rune: %q", got)
	}
}
