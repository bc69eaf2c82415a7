/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package shellwords

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/", []string{"hey", "-z", "1m", "-q", "10", "-c", "2", "http://podinfo-canary.test:9898/"}},
		{"  hey\t-n 5   url  ", []string{"hey", "-n", "5", "url"}},
		{"hey -m POST -d '{test: 2}' http://x/echo", []string{"hey", "-m", "POST", "-d", "{test: 2}", "http://x/echo"}},
		{`hey -H "Accept: text/html" -H 'X-A: "b"' u`, []string{"hey", "-H", "Accept: text/html", "-H", `X-A: "b"`, "u"}},
		{`a "x\"y\\z\q" b`, []string{"a", `x"y\z\q`, "b"}},
		{`a \$HOME b\ c`, []string{"a", "$HOME", "b c"}},
		{`a '' ""`, []string{"a", "", ""}},
		{"a 'it'\"'\"'s' b", []string{"a", "it's", "b"}},
		{"a \\\n b", []string{"a", "b"}},
		{"a#b", []string{"a#b"}},
		{"", nil},
	} {
		got, err := Split(tc.line)
		if err != nil {
			t.Errorf("Split(%q): %v", tc.line, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Split(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestSplitReportsShellFeatures(t *testing.T) {
	for _, tc := range []struct {
		line string
		char rune
	}{
		{"curl -sd 'test' http://podinfo-canary:9898/token | grep token", '|'},
		{"hey -z 1m http://x/ && echo done", '&'},
		{"hey http://x/?a=1&b=2", '&'},
		{"hey http://x/ > /dev/null", '>'},
		{"hey $URL", '$'},
		{`hey "$URL"`, '$'},
		{"hey `cat url`", '`'},
		{"hey http://x/; rm -rf /", ';'},
		{"hey http://x/ # comment", '#'},
		{"hey http://x/\nrm -rf /", '\n'},
	} {
		_, err := Split(tc.line)
		var fe *ShellFeatureError
		if !errors.As(err, &fe) || !errors.Is(err, ErrNeedsShell) {
			t.Errorf("Split(%q): want a shell-feature error, got %v", tc.line, err)
			continue
		}
		if fe.Char != tc.char {
			t.Errorf("Split(%q): reported %q, want %q", tc.line, fe.Char, tc.char)
		}
	}
}

func TestSplitRefusesUnterminatedQuotes(t *testing.T) {
	for _, line := range []string{`hey -d 'x`, `hey -d "x`, `hey -d \`} {
		_, err := Split(line)
		if err == nil || errors.Is(err, ErrNeedsShell) {
			t.Errorf("Split(%q): want a syntax error, got %v", line, err)
		}
		if err != nil && !strings.Contains(err.Error(), "unterminated") && !strings.Contains(err.Error(), "backslash") {
			t.Errorf("Split(%q): unclear error %q", line, err)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"hey -z 1m -q 10 -c 2 http://x/", `a "b\"c" 'd'`, "a | b", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			return
		}
		// Words without quoting characters re-join to the same words.
		plain := true
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, " \t\n'\"\\#"+shellOperators) {
				plain = false
			}
		}
		if plain {
			again, err := Split(strings.Join(words, " "))
			if err != nil || !slices.Equal(again, words) {
				t.Fatalf("re-split of %q: %q, %v", words, again, err)
			}
		}
	})
}
