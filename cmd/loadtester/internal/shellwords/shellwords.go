/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package shellwords splits a command line into words the way a POSIX shell would, for
// the command lines that need nothing else from a shell: quotes and backslashes are
// honoured, while pipes, redirections, command lists, substitutions and variables are
// reported instead of interpreted. The load tester uses it to run `hey` command lines
// itself (Split), to run allowed commands without a shell (SplitCommand), and to tell
// both apart from real shell command lines, which only an operator's explicit
// -allow-shell-command lets run.
package shellwords

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrNeedsShell is matched (errors.Is) by the error of a command line that uses a shell
// feature Split does not interpret.
var ErrNeedsShell = errors.New("the command line needs a shell")

// ShellFeatureError says which shell feature a command line uses, and where.
type ShellFeatureError struct {
	// Char is the character that starts the feature, such as '|' or '$'.
	Char rune
	// Offset is its byte offset in the command line.
	Offset int
}

func (e *ShellFeatureError) Error() string {
	return fmt.Sprintf("%v: %q at offset %d (pipes, redirections, lists, substitutions, variables and globs are shell features)",
		ErrNeedsShell, e.Char, e.Offset)
}

// Is makes errors.Is(err, ErrNeedsShell) true.
func (e *ShellFeatureError) Is(target error) bool { return target == ErrNeedsShell }

// shellOperators start a feature that only a shell interprets when they appear unquoted.
// '#' is one too (a comment) when it starts a word.
const shellOperators = "|&;<>()$`\n"

// expansions are the characters a shell expands in an unquoted word (globs, and braces in
// bash). Split keeps them literally, as a shell does with a glob that matches no file,
// since hey URLs such as http://x/?a=1 are written unquoted; SplitCommand reports them,
// because a command run without a shell would not see what the same line run by a shell
// sees. '~' is one too when it starts a word.
const expansions = "*?[{"

// assignment is a leading NAME=value word, which a shell takes as an environment
// variable for the command rather than as the command.
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// Split returns the words of line. Whitespace separates words; single quotes keep
// everything literally; double quotes keep everything but a backslash before one of
// $ ` " \ and newline; an unquoted backslash keeps the next character (a backslash before
// a newline joins lines). A shell feature (unquoted | & ; < > ( ) $ ` newline, a word
// starting with #, or $ and ` inside double quotes) gives a *ShellFeatureError; a missing
// closing quote gives an error too.
func Split(line string) ([]string, error) { return split(line, false) }

// SplitCommand is Split for a command that runs without a shell: besides what Split
// reports, an unquoted glob or brace (* ? [ {), a word starting with an unquoted ~, and a
// first word that is an assignment (NAME=value) are shell features too, so that the
// words are exactly what the same line run by a shell would pass to the command.
func SplitCommand(line string) ([]string, error) { return split(line, true) }

func split(line string, strict bool) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // a word has started, even an empty one such as ''
		quoted bool // the current word has a quoted or escaped part
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord, quoted = false, false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\\':
			if i+1 >= len(line) {
				return nil, errors.New("the command line ends with a lone backslash")
			}
			i++
			if line[i] == '\n' { // line continuation
				continue
			}
			cur.WriteByte(line[i])
			inWord, quoted = true, true
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			cur.WriteString(line[i+1 : i+1+end])
			inWord, quoted = true, true
			i += end + 1
		case c == '"':
			next, err := doubleQuoted(line, i, &cur)
			if err != nil {
				return nil, err
			}
			inWord, quoted = true, true
			i = next
		case c == '#' && !inWord:
			return nil, &ShellFeatureError{Char: '#', Offset: i}
		case strings.IndexByte(shellOperators, c) >= 0:
			return nil, &ShellFeatureError{Char: rune(c), Offset: i}
		case strict && (strings.IndexByte(expansions, c) >= 0 || (c == '~' && !inWord)):
			return nil, &ShellFeatureError{Char: rune(c), Offset: i}
		case strict && c == '=' && len(words) == 0 && !quoted && assignment.MatchString(cur.String()+"="):
			return nil, &ShellFeatureError{Char: '=', Offset: i}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// doubleQuoted copies the double-quoted string that opens at line[open] into cur and
// returns the offset of its closing quote.
func doubleQuoted(line string, open int, cur *strings.Builder) (int, error) {
	for i := open + 1; i < len(line); i++ {
		switch c := line[i]; c {
		case '"':
			return i, nil
		case '$', '`':
			return 0, &ShellFeatureError{Char: rune(c), Offset: i}
		case '\\':
			if i+1 < len(line) && strings.IndexByte("$`\"\\\n", line[i+1]) >= 0 {
				i++
				if line[i] != '\n' {
					cur.WriteByte(line[i])
				}
				continue
			}
			cur.WriteByte(c)
		default:
			cur.WriteByte(c)
		}
	}
	return 0, fmt.Errorf("unterminated double quote at offset %d", open)
}

// safeWord matches the words Join writes without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Join writes words back as a command line that Split turns into the same words: joined
// by single spaces, each word that holds anything but letters, digits and _@%+=:,./-
// single-quoted. The allow-list
// patterns of commands run without a shell are matched against it, so that a pattern
// sees word boundaries as they are: ["a b"] is 'a b', never the two words a b.
func Join(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		if safeWord.MatchString(w) {
			quoted[i] = w
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
