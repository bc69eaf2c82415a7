/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// Model holds the values a metric query can refer to. Queries see them as functions, as in
// Flagger: {{ name }}, {{ namespace }}, {{ target }}, {{ service }}, {{ ingress }},
// {{ route }}, {{ interval }} and {{ variables.<key> }}.
type Model struct {
	Name      string // the Canary's name
	Namespace string // the Canary's namespace
	Target    string // spec.targetRef.name
	Service   string // spec.service.name, else the target
	Ingress   string // spec.ingressRef.name, else the target
	Route     string // spec.routeRef.name, else the target
	Interval  string // the metric's interval, 1m when unset
	Variables map[string]string
}

// ModelFor returns the model of one of a Canary's metrics. Unlike Flagger, the interval
// defaults to 1m for MetricTemplate metrics too: Flagger renders {{ interval }} as an empty
// string there, which turns `[{{ interval }}]` into the invalid range `[]`.
func ModelFor(c *flaggerv1.Canary, m flaggerv1.CanaryMetric) Model {
	target := c.Spec.TargetRef.Name
	md := Model{
		Name:      c.Name,
		Namespace: c.Namespace,
		Target:    target,
		Service:   target,
		Ingress:   target,
		Route:     target,
		Interval:  m.GetMetricInterval(),
		Variables: maps.Clone(m.TemplateVariables),
	}
	if c.Spec.Service.Name != "" {
		md.Service = c.Spec.Service.Name
	}
	if c.Spec.IngressRef != nil && c.Spec.IngressRef.Name != "" {
		md.Ingress = c.Spec.IngressRef.Name
	}
	if c.Spec.RouteRef != nil && c.Spec.RouteRef.Name != "" {
		md.Route = c.Spec.RouteRef.Name
	}
	return md
}

// MissingVariableError reports a {{ variables.<key> }} whose key the metric's
// templateVariables do not set.
type MissingVariableError struct {
	Key string
}

func (e *MissingVariableError) Error() string {
	return fmt.Sprintf("the query uses {{ variables.%s }} but templateVariables has no key %q", e.Key, e.Key)
}

// MaxQueryBytes bounds a rendered query. A PromQL query is a few hundred bytes; a template
// that renders more is a mistake or a bomb ({{ range }} of printf with a wide field turns 44
// bytes into megabytes), and rendering stops as soon as it passes the bound.
const MaxQueryBytes = 64 << 10

// ErrQueryTooLarge is matched (errors.Is) by the error of a query whose rendering, or one
// of whose printf, print, html, js or urlquery results, passes MaxQueryBytes.
var ErrQueryTooLarge = fmt.Errorf("the rendered query is larger than %d KiB", MaxQueryBytes>>10)

// ValidateQuery checks a query template without rendering it: that it parses, calls only
// the functions queries have, and uses none of the constructs Render refuses. Whether its
// output stays within MaxQueryBytes depends on the template variables, and is known only
// when it is rendered.
func ValidateQuery(query string) error {
	stub := func() string { return "" }
	funcs := template.FuncMap{
		"name": stub, "namespace": stub, "target": stub, "service": stub, "ingress": stub, "route": stub, "interval": stub,
		"variables": func() map[string]string { return nil },
	}
	maps.Copy(funcs, boundedBuiltins())
	t, err := template.New("query").Funcs(funcs).Parse(query)
	if err != nil {
		return fmt.Errorf("not a valid Go template: %w", err)
	}
	return checkConstructs(t)
}

// Render executes query as a Go text/template with the model's functions. A syntax error,
// a reference to an unknown function or a missing template variable is an error; the
// result is trimmed of surrounding white space.
//
// Every query comes from a Canary or MetricTemplate author, so rendering is bounded in
// memory and time: the output stops at MaxQueryBytes, the functions that can build long
// strings (printf, print, println, html, js, urlquery) refuse results past it,
// {{ template }}, {{ block }} and {{ define }} are refused (they allow exponential
// recursion without output), and {{ range }} may iterate over {{ variables }} only, not
// nested. Template variables are inserted escaped for a double-quoted PromQL string (see
// EscapeVariable).
func Render(query string, m Model) (string, error) {
	vars := make(map[string]string, len(m.Variables))
	for k, v := range m.Variables {
		vars[k] = EscapeVariable(v)
	}
	str := func(s string) func() string { return func() string { return s } }
	funcs := template.FuncMap{
		"name":      str(m.Name),
		"namespace": str(m.Namespace),
		"target":    str(m.Target),
		"service":   str(m.Service),
		"ingress":   str(m.Ingress),
		"route":     str(m.Route),
		"interval":  str(m.Interval),
		"variables": func() map[string]string { return vars },
	}
	maps.Copy(funcs, boundedBuiltins())
	// missingkey=error turns an unset variable into an error instead of "<no value>",
	// which would otherwise reach Prometheus as part of a label matcher.
	t, err := template.New("query").Option("missingkey=error").Funcs(funcs).Parse(query)
	if err != nil {
		return "", fmt.Errorf("parsing the query template: %w", err)
	}
	if err := checkConstructs(t); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&limitedWriter{w: &b, left: MaxQueryBytes}, nil); err != nil {
		// text/template's own message ("map has no entry for key") does not say where the
		// key should come from: name the missing template variable instead.
		for _, key := range variableKeys(t.Tree) {
			if _, ok := vars[key]; !ok && strings.Contains(err.Error(), fmt.Sprintf("no entry for key %q", key)) {
				return "", &MissingVariableError{Key: key}
			}
		}
		return "", fmt.Errorf("rendering the query template: %w", err)
	}
	return strings.TrimSpace(b.String()), nil
}

// limitedWriter fails a write that would pass its limit; text/template stops executing at
// the first failed write.
type limitedWriter struct {
	w    io.Writer
	left int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		l.left = -1
		return 0, ErrQueryTooLarge
	}
	l.left -= len(p)
	return l.w.Write(p)
}

// checkConstructs refuses the template constructs whose cost is not bounded by the size of
// the output: calls of other templates (recursion) and loops other than one level over
// {{ variables }}.
func checkConstructs(t *template.Template) error {
	for _, other := range t.Templates() {
		if other.Name() != t.Name() {
			return fmt.Errorf("{{ define %q }}: metric queries cannot define templates", other.Name())
		}
	}
	var check func(n parse.Node, inRange bool) error
	checkList := func(l *parse.ListNode, inRange bool) error {
		if l == nil {
			return nil
		}
		return check(l, inRange)
	}
	check = func(n parse.Node, inRange bool) error {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				if err := check(c, inRange); err != nil {
					return err
				}
			}
		case *parse.TemplateNode:
			return fmt.Errorf("{{ template %q }}: metric queries cannot call templates", n.Name)
		case *parse.IfNode:
			if err := checkList(n.List, inRange); err != nil {
				return err
			}
			return checkList(n.ElseList, inRange)
		case *parse.WithNode:
			if err := checkList(n.List, inRange); err != nil {
				return err
			}
			return checkList(n.ElseList, inRange)
		case *parse.RangeNode:
			if inRange || !rangesOverVariables(n.Pipe) {
				return fmt.Errorf("{{ range %s }}: metric queries may only loop over {{ variables }}, and not in another loop", n.Pipe)
			}
			if err := checkList(n.List, true); err != nil {
				return err
			}
			return checkList(n.ElseList, true)
		}
		return nil
	}
	if t.Tree == nil {
		return nil
	}
	return check(t.Tree.Root, false)
}

func rangesOverVariables(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	id, ok := p.Cmds[0].Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "variables"
}

// boundedBuiltins replace text/template's builtins that can build long strings: each
// refuses a result past MaxQueryBytes, and printf and print refuse before formatting when
// their arguments and field widths alone would pass it, so no call allocates much more
// than the bound.
func boundedBuiltins() template.FuncMap {
	bound := func(name, s string) (string, error) {
		if len(s) > MaxQueryBytes {
			return "", fmt.Errorf("%s: %w", name, ErrQueryTooLarge)
		}
		return s, nil
	}
	sprint := func(name string, f func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) {
			if argsSize(args, MaxQueryBytes) > MaxQueryBytes {
				return "", fmt.Errorf("%s: %w", name, ErrQueryTooLarge)
			}
			return bound(name, f(args...))
		}
	}
	escaper := func(name string, f func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) { return bound(name, f(args...)) }
	}
	return template.FuncMap{
		"printf": func(format string, args ...any) (string, error) {
			if len(format)+formatWidths(format)+argsSize(args, MaxQueryBytes) > MaxQueryBytes {
				return "", fmt.Errorf("printf: %w", ErrQueryTooLarge)
			}
			return bound("printf", fmt.Sprintf(format, args...))
		},
		"print":    sprint("print", fmt.Sprint),
		"println":  sprint("println", fmt.Sprintln),
		"html":     escaper("html", template.HTMLEscaper),
		"js":       escaper("js", template.JSEscaper),
		"urlquery": escaper("urlquery", template.URLQueryEscaper),
	}
}

// argsSize is the printed size of args, counted up to just past limit.
func argsSize(args []any, limit int) int {
	n := 0
	for _, a := range args {
		switch v := a.(type) {
		case string:
			n += len(v)
		default:
			// Values reach a query from the model, template literals or bounded functions:
			// each is small, only their repetition is not.
			n += len(fmt.Sprint(v))
		}
		if n > limit {
			return n
		}
	}
	return n
}

// formatWidths sums the widths and precisions written in a printf format: what padding may
// add beyond the arguments (fmt caps each at 1e6; a * width counts as that).
func formatWidths(format string) int {
	const fmtMax = 1_000_000
	total := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
	verb:
		for i++; i < len(format); i++ {
			switch c := format[i]; {
			case c == '*':
				total += fmtMax
			case c >= '0' && c <= '9':
				j := i
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				w, err := strconv.Atoi(format[i:j])
				if err != nil || w > fmtMax {
					w = fmtMax
				}
				total += w
				i = j - 1
			case strings.IndexByte("+-# .[]", c) < 0:
				break verb // the verb ends the directive
			}
		}
	}
	return total
}

// EscapeVariable makes a template variable safe inside a double-quoted PromQL string, the
// way every Flagger template uses them (destination_workload=~"{{ variables.app }}"): a
// double quote, a line break and a backslash that does not start one of PromQL's escape
// sequences are escaped, so a value can never end the string it is pasted into and add
// PromQL of its own (the template may belong to another team, and its Prometheus to
// another tenant). A backslash that starts a valid escape is kept, so regular expressions
// written for Flagger, which pasted values unchanged, keep their meaning ("a\\.b" still
// matches "a.b"). Values are not made safe for single-quoted or backquoted strings, nor
// outside strings: a template that pastes a variable there takes PromQL from every Canary
// that references it.
func EscapeVariable(v string) string {
	if !strings.ContainsAny(v, "\\\"\n\r") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			if n := validEscape(v[i:]); n > 0 {
				b.WriteString(v[i : i+n])
				i += n - 1
				continue
			}
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// validEscape returns the length of the PromQL escape sequence at the start of s (which
// starts with a backslash), or 0 when there is none.
func validEscape(s string) int {
	if len(s) < 2 {
		return 0
	}
	digits := func(n int, ok func(byte) bool) int {
		if len(s) < 2+n {
			return 0
		}
		for _, c := range []byte(s[2 : 2+n]) {
			if !ok(c) {
				return 0
			}
		}
		return 2 + n
	}
	hex := func(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }
	switch c := s[1]; {
	case strings.IndexByte(`abfnrtv\"`, c) >= 0:
		return 2
	case c == 'x':
		return digits(2, hex)
	case c == 'u':
		return digits(4, hex)
	case c == 'U':
		return digits(8, hex)
	case c >= '0' && c <= '7':
		if n := len(s); n >= 4 && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7' {
			return 4
		}
	}
	return 0
}

// variableKeys lists, in order of appearance, the keys of every {{ variables.<key> }} in
// the template.
func variableKeys(t *parse.Tree) []string {
	if t == nil || t.Root == nil {
		return nil
	}
	var keys []string
	var walk func(n parse.Node)
	walkPipe := func(p *parse.PipeNode) {
		if p != nil {
			walk(p)
		}
	}
	walkList := func(l *parse.ListNode) {
		if l != nil {
			walk(l)
		}
	}
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walkPipe(n.Pipe)
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			if id, ok := n.Node.(*parse.IdentifierNode); ok && id.Ident == "variables" && len(n.Field) > 0 {
				keys = append(keys, n.Field[0])
			}
			walk(n.Node)
		case *parse.IfNode:
			walkPipe(n.Pipe)
			walkList(n.List)
			walkList(n.ElseList)
		case *parse.RangeNode:
			walkPipe(n.Pipe)
			walkList(n.List)
			walkList(n.ElseList)
		case *parse.WithNode:
			walkPipe(n.Pipe)
			walkList(n.List)
			walkList(n.ElseList)
		case *parse.TemplateNode:
			walkPipe(n.Pipe)
		}
	}
	walk(t.Root)
	return keys
}
