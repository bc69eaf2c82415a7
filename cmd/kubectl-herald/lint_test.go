package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const compatDir = "../../../shared/compat"

// The compatibility corpus: lint accepts every Canary whose provider Herald implements and
// refuses the others by their provider, and the KEDA ScaledObject by its kind, as the
// admission webhook does (webhooks/canary's TestCorpus counts the same 14, 6 and 1).
func TestLintCompatCorpus(t *testing.T) {
	if _, err := os.Stat(compatDir); err != nil {
		t.Skipf("no compatibility corpus beside the checkout: %v", err)
	}
	h := newHarness(t)
	if code := h.run("lint", "-R", compatDir); code != 1 {
		t.Errorf("exit %d, want 1 (six Canaries use providers Herald does not implement)", code)
	}
	out := h.out.String()
	contains(t, out, "21 objects checked: 14 valid, 7 invalid (7 errors,")
	contains(t, out, `error: spec.autoscalerRef.kind: Unsupported value: "ScaledObject"`)
	errorLine := regexp.MustCompile(`(?m)^(\S+): Canary \S+: error: spec\.provider: Unsupported value: "([a-z]+)"`)
	matches := errorLine.FindAllStringSubmatch(out, -1)
	if len(matches) != 6 {
		t.Fatalf("%d spec.provider errors, want 6:\n%s", len(matches), out)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m[1])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "provider: "+m[2]) {
			t.Errorf("%s: the error names provider %q, which the file does not use", filepath.Base(m[1]), m[2])
		}
	}
	// Without -R a directory's subdirectories are not read, as with kubectl -f.
	if code := h.run("lint", compatDir); code != 0 {
		t.Errorf("exit %d for a directory with nothing to lint at its top", code)
	}
	contains(t, h.err.String(), "-R")
}

// Invalid specs: every problem with its field path, unknown fields, unserved versions,
// skipped kinds, and the exit code.
func TestLintInvalidSpecs(t *testing.T) {
	h := newHarness(t)
	if code := h.run("lint", "testdata/lint"); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	golden(t, "lint.golden", h.out.String())

	if code := h.run("lint", "testdata/lint/valid.yaml"); code != 0 {
		t.Errorf("a valid Canary: exit %d\n%s", code, h.out.String())
	}
	contains(t, h.out.String(), "1 object checked: 1 valid, 0 invalid (0 errors, 0 warnings)")

	h.in.WriteString("apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: x}\nspec: {service: {port: 0}}\n")
	if code := h.run("lint", "-"); code != 1 {
		t.Errorf("stdin: exit %d, want 1", code)
	}
	contains(t, h.out.String(), "<stdin>: Canary x: error: spec.targetRef.kind: Required value")
	contains(t, h.out.String(), "<stdin>: Canary x: error: spec.service.port: Invalid value: 0")

	if code := h.run("lint", "testdata/lint/missing.yaml"); code != 1 {
		t.Errorf("a missing file: exit %d, want 1", code)
	}
	contains(t, h.err.String(), "no such file or directory")

	h.in.WriteString("kind: [unclosed\n")
	if code := h.run("lint", "-"); code != 1 {
		t.Errorf("malformed YAML: exit %d, want 1", code)
	}
	contains(t, h.out.String(), "<stdin>: error: document 1 is not valid YAML")
}
