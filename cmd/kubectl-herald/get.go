package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/requests"
)

type getOptions struct {
	allNamespaces bool
	watch         bool
	meshProvider  string
	print         *genericclioptions.PrintFlags
}

func newGetCmd(e *env) *cobra.Command {
	o := &getOptions{print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme)}
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List Canaries with their phase, weight, iterations, failed checks and revision",
		Example: `  kubectl herald get                 # the Canaries of the current namespace
  kubectl herald get -A -w           # every namespace, redrawn as they change
  kubectl herald get podinfo -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.run(cmd.Context(), e, name)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List the Canaries of every namespace.")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "After listing, follow the changes (redrawn on a terminal, one row per change otherwise).")
	cmd.Flags().StringVar(&o.meshProvider, "mesh-provider", flaggerv1.ProviderIstio, "Provider of Canaries without spec.provider (Herald's -mesh-provider).")
	o.print.AddFlags(cmd)
	return cmd
}

// table reports whether the output is Herald's table (no -o, or -o wide).
func (o *getOptions) table() (table, wide bool) {
	out := ""
	if o.print.OutputFormat != nil {
		out = *o.print.OutputFormat
	}
	return out == "" || out == "wide", out == "wide"
}

func (o *getOptions) run(ctx context.Context, e *env, name string) error {
	if o.allNamespaces && name != "" {
		return usageError("a Canary name cannot be given with --all-namespaces")
	}
	isTable, wide := o.table()
	var printer printers.ResourcePrinter
	if !isTable {
		var err error
		if printer, err = o.print.ToPrinter(); err != nil {
			return usageError("%v", err)
		}
	}
	cl, ns, err := e.client()
	if err != nil {
		return err
	}
	if o.allNamespaces {
		ns = ""
	}
	canaries, err := listCanaries(ctx, cl, ns, name)
	if err != nil {
		return err
	}
	t := canaryTable{namespaces: o.allNamespaces, wide: wide, meshProvider: o.meshProvider}
	out := e.streams.Out
	switch {
	case !isTable && name != "":
		if err := printer.PrintObj(withKind(&canaries[0]), out); err != nil {
			return err
		}
	case !isTable:
		list := &flaggerv1.CanaryList{Items: canaries}
		for i := range list.Items {
			withKind(&list.Items[i])
		}
		if err := printer.PrintObj(list, out); err != nil {
			return err
		}
	case len(canaries) == 0 && !o.watch:
		if ns == "" {
			fmt.Fprintln(e.streams.ErrOut, "No Canaries found.")
		} else {
			fmt.Fprintf(e.streams.ErrOut, "No Canaries found in %s namespace.\n", ns)
		}
		return nil
	default:
		if !o.watch || !e.terminal {
			writeColored(out, t.render(canaries, e.now(), true), e.color)
		}
	}
	if !o.watch {
		return nil
	}
	return o.follow(ctx, e, cl, ns, name, canaries, t, printer)
}

// follow is get -w: on a terminal the table is redrawn whenever a Canary changes (and every
// few seconds, for the ages); otherwise each change is one more row, or one more object with
// -o, as kubectl get -w does.
func (o *getOptions) follow(ctx context.Context, e *env, cl client.WithWatch, ns, name string, canaries []flaggerv1.Canary, t canaryTable, printer printers.ResourcePrinter) error {
	byKey := map[types.NamespacedName]flaggerv1.Canary{}
	for _, c := range canaries {
		byKey[client.ObjectKeyFromObject(&c)] = c
	}
	redraw := func() {
		all := make([]flaggerv1.Canary, 0, len(byKey))
		for _, c := range byKey {
			all = append(all, c)
		}
		sortCanaries(all)
		var b bytes.Buffer
		b.WriteString(clearScreen)
		b.WriteString(colorize(t.render(all, e.now(), true), e.color))
		_, _ = e.streams.Out.Write(b.Bytes())
	}
	if e.terminal && printer == nil {
		redraw()
	}
	return watchCanaries(ctx, e, cl, ns, name, func(c *flaggerv1.Canary, deleted bool) error {
		key := client.ObjectKeyFromObject(c)
		if deleted {
			delete(byKey, key)
		} else {
			byKey[key] = *c
		}
		switch {
		case printer != nil:
			return printer.PrintObj(withKind(c), e.streams.Out)
		case e.terminal:
			redraw()
		default:
			writeColored(e.streams.Out, t.render([]flaggerv1.Canary{*c}, e.now(), false), e.color)
		}
		return nil
	}, func() error {
		if e.terminal && printer == nil {
			redraw()
		}
		return nil
	})
}

// clearScreen moves the cursor home and clears the terminal (for redraws).
const clearScreen = "\x1b[H\x1b[2J"

// listCanaries lists the Canaries of ns ("" for all), or gets the one named name.
func listCanaries(ctx context.Context, cl client.Client, ns, name string) ([]flaggerv1.Canary, error) {
	if name != "" {
		c, err := getCanary(ctx, cl, ns, name)
		if err != nil {
			return nil, err
		}
		return []flaggerv1.Canary{*c}, nil
	}
	var list flaggerv1.CanaryList
	if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing canaries: %w", explainListError(err))
	}
	sortCanaries(list.Items)
	return list.Items, nil
}

// getCanary reads one Canary, with a clear message when it does not exist.
func getCanary(ctx context.Context, cl client.Client, ns, name string) (*flaggerv1.Canary, error) {
	var c flaggerv1.Canary
	err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &c)
	switch {
	case apierrors.IsNotFound(err):
		return nil, &exitError{code: 1, msg: fmt.Sprintf("canary %q not found in namespace %q", name, ns)}
	case err != nil:
		return nil, fmt.Errorf("reading canary %s/%s: %w", ns, name, explainListError(err))
	}
	return &c, nil
}

// explainListError says what a missing CRD means.
func explainListError(err error) error {
	if strings.Contains(err.Error(), "no matches for kind") {
		return fmt.Errorf("the cluster does not serve flagger.app/v1beta1 Canaries: is Herald installed? (%w)", err)
	}
	return err
}

func sortCanaries(cs []flaggerv1.Canary) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Namespace != cs[j].Namespace {
			return cs[i].Namespace < cs[j].Namespace
		}
		return cs[i].Name < cs[j].Name
	})
}

// withKind sets apiVersion and kind, which typed objects read from the API lack, for -o.
func withKind(c *flaggerv1.Canary) *flaggerv1.Canary {
	c.APIVersion, c.Kind = flaggerv1.GroupVersion.String(), flaggerv1.CanaryKind
	return c
}

// canaryTable renders Canaries as kubectl get does.
type canaryTable struct {
	namespaces   bool
	wide         bool
	meshProvider string
}

func (t canaryTable) render(cs []flaggerv1.Canary, now time.Time, header bool) string {
	var b bytes.Buffer
	w := printers.GetNewTabWriter(&b)
	if header {
		cols := []string{"NAME", "PHASE", "WEIGHT", "ITERATIONS", "FAILED", "REVISION", "AGE"}
		if t.wide {
			cols = append(cols, "PROVIDER", "PROMOTED", "LAST REQUEST", "MESSAGE")
		}
		if t.namespaces {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		fmt.Fprintln(w, strings.Join(cols, "\t"))
	}
	for i := range cs {
		fmt.Fprintln(w, strings.Join(t.row(&cs[i], now), "\t"))
	}
	_ = w.Flush()
	return trimLines(b.String())
}

// trimLines drops the spaces the tab writer pads empty last columns with.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

func (t canaryTable) row(c *flaggerv1.Canary, now time.Time) []string {
	s := c.Status
	row := []string{
		c.Name, phaseText(c), weightText(c, t.meshProvider), iterationsText(c, t.meshProvider),
		fmt.Sprintf("%d/%d", s.FailedChecks, c.GetAnalysisThreshold()),
		dash(requests.Short(s.LastAppliedSpec)), age(c.CreationTimestamp.Time, now),
	}
	if t.wide {
		req := "-"
		if r := s.LastRequest; r != nil {
			req = fmt.Sprintf("%s %s", dash(string(r.Action)), r.Outcome)
		}
		row = append(row, c.GetProvider(t.meshProvider), dash(requests.Short(s.LastPromotedSpec)), req, dash(promotedMessage(c)))
	}
	if t.namespaces {
		row = append([]string{c.Namespace}, row...)
	}
	for i := range row {
		// Names and messages come from the cluster: no terminal escapes, no tabs or
		// newlines that would break the table.
		row[i] = cell(row[i])
	}
	return row
}

// cell makes a value safe for one table cell.
func cell(s string) string {
	s = printers.EscapeTerminal(s)
	return strings.NewReplacer("\t", " ", "\n", " ", "\f", " ").Replace(s)
}

func dash(s string) string {
	if s == "" || s == "(none)" {
		return "-"
	}
	return s
}

// phaseText is the phase, with the pause that holds it. A new Canary that waits for its turn
// to initialise has no phase yet; its Reconciling condition says why.
func phaseText(c *flaggerv1.Canary) string {
	p := string(c.Status.Phase)
	if p == "" {
		p = "-"
		if cond := flaggerv1.FindCondition(c.Status.Conditions, flaggerv1.ReconcilingType); cond != nil && cond.Reason == flaggerv1.ReasonWaitingForTurn {
			p = flaggerv1.ReasonWaitingForTurn
		}
	}
	if requests.IsPaused(c) {
		p += " (paused)"
	}
	return p
}

// strategy is the strategy the provider carries out (the kubernetes provider cannot shift
// weights: blue/green), as the controller decides it.
func strategy(c *flaggerv1.Canary, meshProvider string) string {
	if c.GetProvider(meshProvider) == flaggerv1.ProviderKubernetes {
		return flaggerv1.StrategyBlueGreen
	}
	return c.DeploymentStrategy()
}

func weightText(c *flaggerv1.Canary, meshProvider string) string {
	switch strategy(c, meshProvider) {
	case flaggerv1.StrategyCanary:
		return fmt.Sprintf("%d/%d", c.Status.CanaryWeight, c.GetMaxWeight())
	case flaggerv1.StrategyBlueGreen:
		if c.GetProvider(meshProvider) != flaggerv1.ProviderKubernetes {
			return strconv.Itoa(c.Status.CanaryWeight)
		}
	}
	return "-"
}

func iterationsText(c *flaggerv1.Canary, meshProvider string) string {
	if strategy(c, meshProvider) == flaggerv1.StrategyCanary {
		return "-"
	}
	n := 0
	if a := c.GetAnalysis(); a != nil {
		n = a.Iterations
	}
	if n <= 0 && c.GetProvider(meshProvider) == flaggerv1.ProviderKubernetes {
		n = 10 // the controller's default for the kubernetes provider
	}
	return fmt.Sprintf("%d/%d", min(c.Status.Iterations, max(n, 1)), max(n, 1))
}

// promotedMessage is the message of the Promoted condition, or of the Reconciling one while
// a new Canary waits for its turn (it has no Promoted condition yet).
func promotedMessage(c *flaggerv1.Canary) string {
	if cond := flaggerv1.FindCondition(c.Status.Conditions, flaggerv1.PromotedType); cond != nil {
		return cond.Message
	}
	if cond := flaggerv1.FindCondition(c.Status.Conditions, flaggerv1.ReconcilingType); cond != nil && cond.Reason == flaggerv1.ReasonWaitingForTurn {
		return cond.Message
	}
	return ""
}

// age is kubectl's AGE column.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// writeColored writes table text, coloured when asked.
func writeColored(w io.Writer, text string, color bool) {
	_, _ = io.WriteString(w, colorize(text, color))
}
