// Package helmchart renders and lints Herald's Helm chart (charts/herald) with Helm's Go SDK,
// for the generator that derives config/manager from it (hack/chart) and for the tests that
// check it against the API server.
package helmchart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Release names the release a chart is rendered for.
type Release struct {
	Name, Namespace string
}

// Rendered is the output of a chart: its CRDs (crds/) and its templates' objects, in the order
// of their files.
type Rendered struct {
	CRDs    []*unstructured.Unstructured
	Objects []*unstructured.Unstructured
}

// All returns the CRDs followed by the other objects, the order in which Helm installs them.
func (r Rendered) All() []*unstructured.Unstructured {
	return append(append([]*unstructured.Unstructured{}, r.CRDs...), r.Objects...)
}

// Render loads the chart in dir and renders it for rel with values (merged over values.yaml
// and checked against values.schema.json), as `helm template --include-crds` would.
func Render(dir string, rel Release, values map[string]any) (Rendered, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return Rendered{}, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	renderValues, err := util.ToRenderValues(chrt, values,
		common.ReleaseOptions{Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return Rendered{}, fmt.Errorf("values of chart %s: %w", dir, err)
	}
	files, err := engine.Render(chrt, renderValues)
	if err != nil {
		return Rendered{}, fmt.Errorf("rendering chart %s: %w", dir, err)
	}
	var out Rendered
	for _, crd := range chrt.CRDObjects() {
		objs, err := decode(crd.Filename, crd.File.Data)
		if err != nil {
			return Rendered{}, err
		}
		out.CRDs = append(out.CRDs, objs...)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		if !strings.HasSuffix(base, ".yaml") || strings.HasPrefix(base, "_") {
			continue // NOTES.txt, helpers
		}
		objs, err := decode(name, []byte(files[name]))
		if err != nil {
			return Rendered{}, err
		}
		out.Objects = append(out.Objects, objs...)
	}
	return out, nil
}

func decode(name string, data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" || string(raw) == "{}" {
			continue // an empty document (a template whose condition is false)
		}
		// Through unstructured's own decoder, so that integers stay int64.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		objs = append(objs, u)
	}
}

// Load loads the chart in dir.
func Load(dir string) (*chartv2.Chart, error) { return loader.Load(dir) }
