/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package config embeds the generated manifests that the manager installs itself.
package config

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// CRDs holds the generated CustomResourceDefinitions of flagger.app/v1beta1.
//
//go:embed crd/bases/*.yaml
var CRDs embed.FS

// CRDObjects decodes the embedded CustomResourceDefinitions, sorted by file name.
func CRDObjects() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(CRDs, "crd/bases/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(names))
	for _, name := range names {
		data, err := CRDs.ReadFile(name)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
		if crd.Kind != "CustomResourceDefinition" || crd.Name == "" {
			return nil, fmt.Errorf("%s is not a CustomResourceDefinition", name)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}
