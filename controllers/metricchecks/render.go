/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricchecks

import (
	"fmt"
	"maps"
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

// Render executes query as a Go text/template with the model's functions. A syntax error,
// a reference to an unknown function or a missing template variable is an error; the
// result is trimmed of surrounding white space.
func Render(query string, m Model) (string, error) {
	vars := m.Variables
	if vars == nil {
		vars = map[string]string{}
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
	// missingkey=error turns an unset variable into an error instead of "<no value>",
	// which would otherwise reach Prometheus as part of a label matcher.
	t, err := template.New("query").Option("missingkey=error").Funcs(funcs).Parse(query)
	if err != nil {
		return "", fmt.Errorf("parsing the query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
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
