package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
	canaryhooks "github.com/herald-rollouts/herald/webhooks/canary"
)

// maxLintFile bounds what lint reads of one file.
const maxLintFile = 8 << 20

type lintOptions struct {
	recursive      bool
	meshProvider   string
	selectorLabels []string
}

func newLintCmd(e *env) *cobra.Command {
	o := &lintOptions{}
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Validate Canaries, MetricTemplates and AlertProviders offline, as Herald's admission webhook does",
		Long: `Validates the Canaries, MetricTemplates and AlertProviders of YAML or JSON files (several
documents per file, kind List, directories, - for standard input) with the validation code of
Herald's admission webhook, without a cluster: every problem with its field path, and the
webhook's warnings. Other kinds are skipped. Fields unknown to flagger.app/v1beta1 are errors, as
kubectl apply's strict validation makes them. What needs the cluster (the target's selector, a
MetricTemplate a metric names) is checked at admission only.

Exits 1 when any object has an error.`,
		Example: `  kubectl herald lint deploy/canary.yaml
  kubectl herald lint -R deploy/
  kustomize build overlays/prod | kubectl herald lint -`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("give the files to lint (a directory, or - for standard input)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), e, args)
		},
	}
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "R", false, "Lint the files of directories' subdirectories too.")
	cmd.Flags().StringVar(&o.meshProvider, "mesh-provider", flaggerv1.ProviderIstio, "Provider of Canaries without spec.provider (Herald's -mesh-provider).")
	cmd.Flags().StringSliceVar(&o.selectorLabels, "selector-labels", contract.DefaultSelectorLabels, "Labels that identify a workload (Herald's -selector-labels).")
	return cmd
}

// lintFinding is one error or warning about one object.
type lintFinding struct {
	severity string // "error" or "warning"
	text     string
}

type lintTally struct {
	objects, invalid, errors, warnings, skipped int
}

func (o *lintOptions) run(ctx context.Context, e *env, args []string) error {
	files, err := o.expand(args)
	if err != nil {
		return err
	}
	var t lintTally
	out := e.streams.Out
	for _, f := range files {
		docs, err := readDocuments(f, e.streams.In)
		if err != nil {
			t.invalid++
			t.errors++
			o.print(out, e.color, f, "", lintFinding{"error", err.Error()})
			continue
		}
		for _, d := range docs {
			o.lintDocument(ctx, out, e.color, f, d, &t)
		}
	}
	valid := t.objects - t.invalid
	summary := fmt.Sprintf("%d %s checked: %d valid, %d invalid (%d %s, %d %s)",
		t.objects, plural(t.objects, "object", "objects"), max(valid, 0), t.invalid, t.errors, plural(t.errors, "error", "errors"),
		t.warnings, plural(t.warnings, "warning", "warnings"))
	if t.skipped > 0 {
		summary += fmt.Sprintf("; %d other %s skipped", t.skipped, plural(t.skipped, "object", "objects"))
	}
	fmt.Fprintln(out, summary)
	if t.errors > 0 {
		return &exitError{code: 1}
	}
	if t.objects == 0 {
		fmt.Fprintln(e.streams.ErrOut, "no Canary, MetricTemplate or AlertProvider found (directories are read without their subdirectories unless -R is given)")
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// expand lists the files to read: the files given, and the YAML and JSON files of the
// directories given (their subdirectories too with -R), in name order.
func (o *lintOptions) expand(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, &exitError{code: 1, msg: fmt.Sprintf("cannot read %s: %s", a, unwrapPathError(err))}
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != a && !o.recursive {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading directory %s: %w", a, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// document is one object of a file, as JSON; index counts from 1.
type document struct {
	index int
	json  []byte
}

// readDocuments reads the YAML or JSON documents of a file ("-": in).
func readDocuments(path string, in io.Reader) ([]document, error) {
	var r io.Reader
	if path == "-" {
		r = in
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read: %w", unwrapPathError(err))
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxLintFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	if len(data) > maxLintFile {
		return nil, fmt.Errorf("larger than %d MiB", maxLintFile>>20)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for i := 1; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			i--
			continue
		}
		j, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d is not valid YAML: %w", i, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			i--
			continue
		}
		docs = append(docs, document{index: i, json: j})
	}
}

// stripComments drops the comment lines of a YAML document, to tell an empty one.
func stripComments(raw []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// lintDocument checks one document (each item of a List).
func (o *lintOptions) lintDocument(ctx context.Context, out io.Writer, color bool, file string, d document, t *lintTally) {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Items           []json.RawMessage `json:"items"`
	}
	where := fmt.Sprintf("document %d", d.index)
	if err := json.Unmarshal(d.json, &head); err != nil {
		t.objects++
		t.invalid++
		t.errors++
		o.print(out, color, file, where, lintFinding{"error", "not a Kubernetes object: " + err.Error()})
		return
	}
	if head.Kind == "List" || strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		for i, item := range head.Items {
			o.lintObject(ctx, out, color, file, fmt.Sprintf("%s, item %d", where, i), item, t)
		}
		return
	}
	o.lintObject(ctx, out, color, file, where, d.json, t)
}

// lintObject checks one object: Herald's kinds with the webhook's validators, others skipped.
func (o *lintOptions) lintObject(ctx context.Context, out io.Writer, color bool, file, where string, data []byte, t *lintTally) {
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &meta); err != nil || meta.Kind == "" || meta.APIVersion == "" {
		t.objects++
		t.invalid++
		t.errors++
		o.print(out, color, file, where, lintFinding{"error", "not a Kubernetes object: apiVersion and kind are required"})
		return
	}
	gv, err := schema.ParseGroupVersion(meta.APIVersion)
	if err != nil || gv.Group != flaggerv1.GroupVersion.Group {
		t.skipped++
		return
	}
	t.objects++
	if meta.Metadata.Name != "" {
		where = meta.Kind + " " + meta.Metadata.Name
		if meta.Metadata.Namespace != "" {
			where = meta.Kind + " " + meta.Metadata.Namespace + "/" + meta.Metadata.Name
		}
	}
	findings := o.validate(ctx, gv, meta.Kind, data)
	if meta.Metadata.Name == "" {
		findings = append([]lintFinding{{"error", "metadata.name: Required value"}}, findings...)
	}
	bad := false
	for _, f := range findings {
		if f.severity == "error" {
			t.errors++
			bad = true
		} else {
			t.warnings++
		}
		o.print(out, color, file, where, f)
	}
	if bad {
		t.invalid++
	}
}

// validate decodes an object of Herald's group strictly and runs the admission webhook's
// validator of its kind.
func (o *lintOptions) validate(ctx context.Context, gv schema.GroupVersion, kind string, data []byte) []lintFinding {
	if gv.Version != flaggerv1.GroupVersion.Version {
		return []lintFinding{{"error", fmt.Sprintf("apiVersion: %s is not served: Herald serves %s", gv, flaggerv1.GroupVersion)}}
	}
	var findings []lintFinding
	decode := func(into any) bool {
		strict, err := sigsjson.UnmarshalStrict(data, into)
		if err != nil {
			findings = append(findings, lintFinding{"error", "cannot decode: " + err.Error()})
			return false
		}
		for _, s := range strict {
			findings = append(findings, lintFinding{"error", s.Error()})
		}
		return true
	}
	var warnings []string
	var err error
	switch kind {
	case flaggerv1.CanaryKind:
		var c flaggerv1.Canary
		if !decode(&c) {
			return findings
		}
		v := canaryhooks.NewCanaryValidator(canaryhooks.Options{DefaultProvider: o.meshProvider, SelectorLabels: o.selectorLabels})
		warnings, err = v.ValidateCreate(ctx, &c)
	case "MetricTemplate":
		var m flaggerv1.MetricTemplate
		if !decode(&m) {
			return findings
		}
		warnings, err = (&canaryhooks.MetricTemplateValidator{}).ValidateCreate(ctx, &m)
	case "AlertProvider":
		var a flaggerv1.AlertProvider
		if !decode(&a) {
			return findings
		}
		warnings, err = (&canaryhooks.AlertProviderValidator{}).ValidateCreate(ctx, &a)
	default:
		return []lintFinding{{"error", fmt.Sprintf("kind: %q is not a kind of %s: use Canary, MetricTemplate or AlertProvider", kind, flaggerv1.GroupVersion)}}
	}
	findings = append(findings, causes(err)...)
	for _, w := range warnings {
		findings = append(findings, lintFinding{"warning", w})
	}
	return findings
}

// causes lists a validation error field by field, as kubectl apply shows them.
func causes(err error) []lintFinding {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && len(d.Causes) > 0 {
			out := make([]lintFinding, 0, len(d.Causes))
			for _, c := range d.Causes {
				text := c.Message
				if c.Field != "" && !strings.HasPrefix(text, c.Field) {
					text = c.Field + ": " + text
				}
				out = append(out, lintFinding{"error", text})
			}
			return out
		}
	}
	return []lintFinding{{"error", err.Error()}}
}

// print writes one finding: "<file>: <object>: error: <field>: <message>".
func (o *lintOptions) print(out io.Writer, color bool, file, where string, f lintFinding) {
	sev := f.severity
	if color {
		c := yellow
		if sev == "error" {
			c = red
		}
		sev = c + sev + reset
	}
	if file == "-" {
		file = "<stdin>"
	}
	prefix := file + ": "
	if where != "" {
		prefix += cell(where) + ": "
	}
	fmt.Fprintf(out, "%s%s: %s\n", prefix, sev, cell(f.text))
}
