/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package shellwords splits a command line into words with a real POSIX shell parser
// (mvdan.cc/sh/v3/syntax), for
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

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
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

// shellOperators are the characters that start a feature only a shell interprets when they
// appear unquoted (a '#' starting a word, a comment, is one too).
const shellOperators = "|&;<>()$`\n"

// Split returns the words of line, parsed as a POSIX shell would parse it
// (mvdan.cc/sh/v3/syntax): whitespace separates words, quotes and backslashes are removed as a
// shell removes them. Anything else a shell would do — a pipe, a redirection, a command list,
// a comment, a substitution, a variable — gives a *ShellFeatureError naming the character
// that starts it; a missing closing quote gives an error too. Unquoted globs are kept
// literally, as a shell keeps a glob that matches no file, since hey URLs such as
// http://x/?a=1 are written unquoted.
func Split(line string) ([]string, error) { return split(line, false) }

// SplitCommand is Split for a command that runs without a shell: besides what Split
// reports, an unquoted glob or brace (* ? [ {), a word starting with an unquoted ~, and a
// leading assignment (NAME=value) are shell features too, so that the words are exactly
// what the same line run by a shell would pass to the command.
func SplitCommand(line string) ([]string, error) { return split(line, true) }

func split(line string, strict bool) ([]string, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return nil, errors.New("the command line holds a NUL byte, which no program argument can")
	}
	if strings.IndexByte(line, '\r') >= 0 {
		// The parser reads CRLF as a newline, even inside quotes, where a shell would not.
		return nil, errors.New("the command line holds a carriage return")
	}
	// A parser is not safe for concurrent use; building one per call costs microseconds
	// on a path that runs a command.
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX), syntax.KeepComments(true)).Parse(strings.NewReader(line), "")
	switch {
	case syntax.IsIncomplete(err):
		return nil, fmt.Errorf("unterminated quote, backslash or compound command: %w", err)
	case err != nil:
		return nil, fmt.Errorf("malformed command line (it must be UTF-8 shell syntax): %w", err)
	}
	if len(f.Stmts) == 0 {
		if len(f.Last) > 0 { // only a comment
			return nil, feature('#', f.Last[0].Pos())
		}
		return nil, nil
	}
	if len(f.Stmts) > 1 {
		// Two commands: separated by ';', '&' or a newline.
		first := f.Stmts[0]
		switch {
		case first.Background:
			return nil, feature('&', first.Semicolon)
		case first.Semicolon.IsValid():
			return nil, feature(';', first.Semicolon)
		}
		return nil, feature('\n', first.End())
	}
	st := f.Stmts[0]
	if len(st.Comments) > 0 || len(f.Last) > 0 {
		c := append(st.Comments, f.Last...)[0]
		return nil, feature('#', c.Pos())
	}
	switch {
	case st.Background:
		return nil, feature('&', st.Semicolon)
	case st.Semicolon.IsValid():
		return nil, feature(';', st.Semicolon)
	case st.Negated:
		return nil, feature('!', st.Pos())
	case len(st.Redirs) > 0:
		return nil, feature(rune(st.Redirs[0].Op.String()[0]), st.Redirs[0].OpPos)
	}
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok {
		return nil, commandFeature(line, st.Cmd)
	}
	if len(call.Assigns) > 0 {
		a := call.Assigns[0]
		if a.Name != nil {
			return nil, feature('=', a.Name.End())
		}
		return nil, feature('=', a.Pos())
	}
	if trailingBackslash(line) {
		return nil, errors.New("the command line ends with a lone backslash")
	}
	words := make([]string, 0, len(call.Args))
	for _, w := range call.Args {
		if err := checkWord(w, strict); err != nil {
			return nil, err
		}
		// Quote removal, as a shell does it; nothing is left to expand (checkWord).
		fields, err := expand.Fields(nil, w)
		if err != nil {
			return nil, fmt.Errorf("word at offset %d: %w", w.Pos().Offset(), err)
		}
		if len(fields) != 1 {
			return nil, fmt.Errorf("word at offset %d is not one word", w.Pos().Offset())
		}
		words = append(words, fields[0])
	}
	return words, nil
}

// commandFeature reports a statement that is not a simple command: a pipe or list, a
// subshell or group, a function, a compound command.
func commandFeature(line string, cmd syntax.Command) error {
	switch c := cmd.(type) {
	case *syntax.BinaryCmd:
		return feature(rune(c.Op.String()[0]), c.OpPos)
	case *syntax.Subshell:
		return feature('(', c.Lparen)
	case *syntax.Block:
		return feature('{', c.Lbrace)
	case nil:
		return errors.New("no command")
	}
	// A compound command (if, for, while, case, ...): named by its first character.
	return feature(rune(line[cmd.Pos().Offset()]), cmd.Pos())
}

// checkWord reports the parts of a word a shell would expand: parameters, substitutions and
// arithmetic everywhere (inside double quotes too), and, for a command run without a shell
// (strict), unquoted globs, braces and a leading tilde.
func checkWord(w *syntax.Word, strict bool) error {
	var err error
	syntax.Walk(w, func(n syntax.Node) bool {
		if err != nil {
			return false
		}
		switch x := n.(type) {
		case *syntax.ParamExp:
			err = feature('$', x.Dollar)
		case *syntax.CmdSubst:
			if x.Backquotes {
				err = feature('`', x.Left)
			} else {
				err = feature('$', x.Left)
			}
		case *syntax.ArithmExp:
			err = feature('$', x.Left)
		case *syntax.ProcSubst:
			err = feature(rune(x.Op.String()[0]), x.OpPos)
		case *syntax.SglQuoted, *syntax.DblQuoted:
			return true // their literals are quoted: not expanded
		}
		return err == nil
	})
	if err != nil || !strict {
		return err
	}
	for i, part := range w.Parts {
		lit, ok := part.(*syntax.Lit)
		if !ok {
			continue
		}
		if i == 0 && strings.HasPrefix(lit.Value, "~") {
			return feature('~', lit.ValuePos)
		}
		if j := unquotedIndexAny(lit.Value, "*?[{"); j >= 0 {
			return feature(rune(lit.Value[j]), syntax.NewPos(lit.ValuePos.Offset()+uint(j), 0, 0))
		}
	}
	return nil
}

// unquotedIndexAny is strings.IndexAny for a literal as the parser keeps it, where a
// backslash escapes the next character.
func unquotedIndexAny(lit, chars string) int {
	for i := 0; i < len(lit); i++ {
		switch {
		case lit[i] == '\\':
			i++
		case strings.IndexByte(chars, lit[i]) >= 0:
			return i
		}
	}
	return -1
}

// trailingBackslash reports whether line ends with an odd number of backslashes, which the
// parser reads as a literal backslash but a shell as a line continuation with nothing after it.
func trailingBackslash(line string) bool {
	n := len(line) - len(strings.TrimRight(line, "\\"))
	return n%2 == 1
}

func feature(c rune, pos syntax.Pos) *ShellFeatureError {
	return &ShellFeatureError{Char: c, Offset: int(pos.Offset())}
}

// assignment matches a leading NAME=value word.
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// safeWord matches the words Join writes without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Join writes words back as a command line that Split turns into the same words: joined
// by single spaces, each word that holds anything but letters, digits and _@%+=:,./-
// single-quoted, and so is a first word a shell would take for an assignment or a keyword. The allow-list
// patterns of commands run without a shell are matched against it, so that a pattern
// sees word boundaries as they are: ["a b"] is 'a b', never the two words a b.
func Join(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		// In command position a shell reads NAME=value as an assignment and if, ! ... as
		// keywords: quoted, they are the command's name.
		first := i == 0 && (assignment.MatchString(w) || syntax.IsKeyword(w))
		if safeWord.MatchString(w) && !first {
			quoted[i] = w
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
