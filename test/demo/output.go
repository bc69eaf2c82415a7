package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// start is when the demo began: every progress line says how long ago that was, so a
// reader sees how long each part takes.
var start = time.Now()

// stamp is the elapsed-time prefix of progress lines.
func stamp() string { return fmt.Sprintf("[%6.1fs]", time.Since(start).Seconds()) }

// step announces a part of the walkthrough.
func step(format string, args ...any) {
	fmt.Printf("\n%s ==> %s\n", stamp(), fmt.Sprintf(format, args...))
}

// say prints an explanation under the current step.
func say(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

// progress prints a line of a running release.
func progress(format string, args ...any) {
	fmt.Printf("    %s %s\n", stamp(), fmt.Sprintf(format, args...))
}

// kubectl runs kubectl against the demo's cluster, echoing the command as a user would type
// it, with its output indented under the echo.
func (d *demo) kubectl(ctx context.Context, args ...string) error {
	fmt.Printf("    $ kubectl %s\n", shellJoin(args))
	cmd := d.kubectlCmd(ctx, args...)
	cmd.Stdout, cmd.Stderr = indent(os.Stdout), indent(os.Stderr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// kubectlTail is kubectl whose output is cut to its header line and its last n lines, for
// lists that grow over the demo (events).
func (d *demo) kubectlTail(ctx context.Context, n int, args ...string) error {
	fmt.Printf("    $ kubectl %s\n", shellJoin(args))
	out, err := d.kubectlCmd(ctx, args...).CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n+1 {
		fmt.Printf("      (%d earlier lines left out)\n", len(lines)-n-1)
		lines = append(lines[:1], lines[len(lines)-n:]...)
	}
	for _, l := range lines {
		fmt.Println("      " + l)
	}
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(d.env.BinDir, "kubectl"), append([]string{"--kubeconfig", d.env.Kubeconfig}, args...)...)
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)

// shellJoin quotes the arguments that need it, so an echoed command can be pasted into a
// shell.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if plainWord.MatchString(a) {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

// tail returns the last n lines of a file, or a note saying why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// indent prefixes every line written to w, so command output stands apart from progress lines.
func indent(w io.Writer) io.Writer { return &prefixWriter{w: w, atLineStart: true} }

type prefixWriter struct {
	w           io.Writer
	atLineStart bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if p.atLineStart {
			out = append(out, "      "...)
		}
		out = append(out, c)
		p.atLineStart = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
