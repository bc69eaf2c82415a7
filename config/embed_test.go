/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package config

import "testing"

func TestCRDObjects(t *testing.T) {
	crds, err := CRDObjects()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"alertproviders.flagger.app":  false,
		"canaries.flagger.app":        false,
		"metrictemplates.flagger.app": false,
	}
	for _, crd := range crds {
		if _, ok := want[crd.Name]; !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
		}
		want[crd.Name] = true
		if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1beta1" {
			t.Errorf("%s: want the single version v1beta1", crd.Name)
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("CRD %s missing", name)
		}
	}
}
