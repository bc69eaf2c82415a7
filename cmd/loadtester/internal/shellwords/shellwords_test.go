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
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
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
		{"hey -z 1m http://x/ || true", '|'},
		{"(hey http://x/)", '('},
		{"{ hey http://x/; }", '{'},
		{"! hey http://x/", '!'},
		{"if true; then hey http://x/; fi", 'i'},
		{"for u in a b; do hey $u; done", 'f'},
		{"hey $((1+2))", '$'},
		{"hey $(cat url)", '$'},
		{"hey http://x/ 2>&1", '>'},
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

func TestSplitRefusesWhatNoArgumentCanHold(t *testing.T) {
	for _, line := range []string{"hey -d a\x00b u", "hey -d 'a\r\nb' u", "hey -d \xff u"} {
		if _, err := Split(line); err == nil || errors.Is(err, ErrNeedsShell) {
			t.Errorf("Split(%q): want an error, got %v", line, err)
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
		if err != nil || len(words) == 0 {
			return
		}
		// Words without quoting characters re-join to the same words (unless the first is a
		// shell keyword such as "!" or "if", which only a shell runs).
		plain := !syntax.IsKeyword(words[0]) && !assignment.MatchString(words[0])
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

func TestSplitCommandReportsExpansionsAndAssignments(t *testing.T) {
	for _, tc := range []struct {
		line string
		char rune
	}{
		{"touch /tmp/x;echo${IFS}pwned>/tmp/pwned", ';'},
		{"rm /tmp/*.log", '*'},
		{"ls /tmp/?", '?'},
		{"ls /tmp/[ab]", '['},
		{"echo {a,b}", '{'},
		{"cat ~/.kube/config", '~'},
		{"KUBECONFIG=/etc/x kubectl get pods", '='},
	} {
		_, err := SplitCommand(tc.line)
		var fe *ShellFeatureError
		if !errors.As(err, &fe) || fe.Char != tc.char {
			t.Errorf("SplitCommand(%q): want a shell-feature error at %q, got %v", tc.line, tc.char, err)
		}
	}
	// Quoted, the same characters are plain text, and Split (for hey) keeps them as a shell
	// keeps a glob that matches nothing.
	for line, want := range map[string][]string{
		`rm '/tmp/*.log'`:           {"rm", "/tmp/*.log"},
		`echo "{a,b}" \~ a~b`:       {"echo", "{a,b}", "~", "a~b"},
		`helm upgrade --set=a=b x`:  {"helm", "upgrade", "--set=a=b", "x"},
		`'A=b' c`:                   {"A=b", "c"},
		"curl -s http://x/?a=1":     nil, // a glob for SplitCommand
		"hey http://x/?a=1&b=2":     nil, // & for both
		"hey -z 1m http://x/?a=[1]": nil,
	} {
		got, err := SplitCommand(line)
		if want == nil {
			if err == nil {
				t.Errorf("SplitCommand(%q) = %q, want a shell-feature error", line, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	if got, err := Split("hey -z 1m http://x/?a=[1]"); err != nil || got[3] != "http://x/?a=[1]" {
		t.Errorf("Split keeps globs for hey: %q %v", got, err)
	}
}

func TestJoinQuotesWhatAPatternMustNotMistakeForWords(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"touch", "/tmp/x"}, "touch /tmp/x"},
		{[]string{"helm", "test", "podinfo", "--cleanup"}, "helm test podinfo --cleanup"},
		{[]string{"helm", "test", "a --cleanup"}, "helm test 'a --cleanup'"},
		{[]string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
		{[]string{"curl", "-H", "X: $y", "http://x/?a=1"}, `curl -H 'X: $y' 'http://x/?a=1'`},
	} {
		if got := Join(tc.words); got != tc.want {
			t.Errorf("Join(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

func FuzzJoin(f *testing.F) {
	for _, s := range []string{"a", "a b", "it's", "", "$x;y", "\n"} {
		f.Add(s, "plain")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) || strings.ContainsAny(a+b, "\x00\r") {
			return // command lines arrive in JSON, as UTF-8; Split refuses NUL and CR
		}
		words := []string{a, b}
		again, err := Split(Join(words))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("Split(Join(%q)) = %q, %v", words, again, err)
		}
	})
}
