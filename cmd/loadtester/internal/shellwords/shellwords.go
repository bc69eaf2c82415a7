/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package shellwords splits a command line into words the way a POSIX shell would, for
// the command lines that need nothing else from a shell: quotes and backslashes are
// honoured, while pipes, redirections, command lists, substitutions and variables are
// reported instead of interpreted. The load tester uses it to run `hey` command lines
// itself, and to tell them apart from real shell commands, which need the allow-list.
package shellwords

import (
	"errors"
	"fmt"
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
	return fmt.Sprintf("%v: %q at offset %d (pipes, redirections, lists, substitutions and variables are shell features)",
		ErrNeedsShell, e.Char, e.Offset)
}

// Is makes errors.Is(err, ErrNeedsShell) true.
func (e *ShellFeatureError) Is(target error) bool { return target == ErrNeedsShell }

// shellOperators start a feature that only a shell interprets when they appear unquoted.
// '#' is one too (a comment) when it starts a word.
const shellOperators = "|&;<>()$`\n"

// Split returns the words of line. Whitespace separates words; single quotes keep
// everything literally; double quotes keep everything but a backslash before one of
// $ ` " \ and newline; an unquoted backslash keeps the next character (a backslash before
// a newline joins lines). A shell feature (unquoted | & ; < > ( ) $ ` newline, a word
// starting with #, or $ and ` inside double quotes) gives a *ShellFeatureError; a missing
// closing quote gives an error too.
func Split(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // a word has started, even an empty one such as ''
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
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
			inWord = true
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			cur.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			next, err := doubleQuoted(line, i, &cur)
			if err != nil {
				return nil, err
			}
			inWord = true
			i = next
		case c == '#' && !inWord:
			return nil, &ShellFeatureError{Char: '#', Offset: i}
		case strings.IndexByte(shellOperators, c) >= 0:
			return nil, &ShellFeatureError{Char: rune(c), Offset: i}
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
