/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package gates

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestConfigMapStore runs the store against a real kube-apiserver, whose resourceVersion
// checks are what keeps concurrent writers from losing each other's changes. It needs the
// local control plane binaries (KUBEBUILDER_ASSETS, which `make test` sets).
func TestConfigMapStore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no API server")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (make test sets it): the ConfigMap store needs etcd and kube-apiserver")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms := client.CoreV1().ConfigMaps("default")
	podinfo := ID{"test", "podinfo"}

	t.Run("a pod replacement and a second replica see the gates", func(t *testing.T) {
		first := NewConfigMapStore(client, "default", "gates-shared")
		if err := first.Check(t.Context()); err != nil {
			t.Fatalf("a missing ConfigMap is not an error: %v", err)
		}
		if isOpen(t, first, Confirm, podinfo) {
			t.Fatal("a gate is open without a ConfigMap")
		}
		if err := first.Set(t.Context(), Confirm, podinfo, true); err != nil {
			t.Fatal(err)
		}
		cm, err := cms.Get(t.Context(), "gates-shared", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the ConfigMap was not created: %v", err)
		}
		if !strings.Contains(cm.Data[FileName], `"test/podinfo": true`) {
			t.Errorf("ConfigMap data: %q", cm.Data)
		}
		second := NewConfigMapStore(client, "default", "gates-shared")
		if !isOpen(t, second, Confirm, podinfo) || isOpen(t, second, Rollback, podinfo) {
			t.Fatal("the second store does not see the gate the first opened")
		}
		if err := second.Set(t.Context(), Confirm, podinfo, false); err != nil {
			t.Fatal(err)
		}
		if isOpen(t, first, Confirm, podinfo) {
			t.Fatal("the first store still sees a gate the second closed")
		}
	})

	t.Run("concurrent writers lose no change", func(t *testing.T) {
		stores := []*ConfigMapStore{NewConfigMapStore(client, "default", "gates-race"), NewConfigMapStore(client, "default", "gates-race")}
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- stores[i%2].Set(t.Context(), Rollback, ID{"test", fmt.Sprintf("canary-%d", i)}, true)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		for i := range n {
			if !isOpen(t, stores[0], Rollback, ID{"test", fmt.Sprintf("canary-%d", i)}) {
				t.Errorf("the rollback gate of canary-%d was lost", i)
			}
		}
	})

	t.Run("a ConfigMap shipped empty holds closed gates and is filled in", func(t *testing.T) {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gates-shipped",
			Labels: map[string]string{"kept": "yes"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		s := NewConfigMapStore(client, "default", "gates-shipped")
		if isOpen(t, s, Confirm, podinfo) {
			t.Fatal("open in an empty ConfigMap")
		}
		if err := s.Set(t.Context(), Confirm, podinfo, true); err != nil {
			t.Fatal(err)
		}
		cm, _ := cms.Get(t.Context(), "gates-shipped", metav1.GetOptions{})
		if cm.Labels["kept"] != "yes" || !strings.Contains(cm.Data[FileName], "test/podinfo") {
			t.Errorf("ConfigMap after Set: %+v", cm)
		}
	})

	t.Run("a broken document is an error, never overwritten", func(t *testing.T) {
		if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gates-broken"},
			Data: map[string]string{FileName: "{not json"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		s := NewConfigMapStore(client, "default", "gates-broken")
		for _, err := range []error{s.Check(t.Context()), s.Set(t.Context(), Confirm, podinfo, true)} {
			if err == nil || !strings.Contains(err.Error(), "ConfigMap default/gates-broken key gates.json is not valid JSON") {
				t.Errorf("want an error naming the ConfigMap, got %v", err)
			}
		}
		if _, err := s.IsOpen(t.Context(), Confirm, podinfo); err == nil {
			t.Error("IsOpen read a broken document as closed gates")
		}
		cm, _ := cms.Get(t.Context(), "gates-broken", metav1.GetOptions{})
		if cm.Data[FileName] != "{not json" {
			t.Errorf("the broken document was overwritten: %q", cm.Data[FileName])
		}
	})
}
