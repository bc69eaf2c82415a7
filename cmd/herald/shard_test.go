package main

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/internal/contract"
)

func TestShardSelectorNarrowsTheCanaryCacheAndTheLease(t *testing.T) {
	all := parseFlags(t)
	if all.shard != nil || leaseName(all.shard) != "herald-leader-election" {
		t.Fatalf("no selector: shard %v, lease %q", all.shard, leaseName(all.shard))
	}
	for obj := range all.cacheOptions().ByObject {
		if _, ok := obj.(*flaggerv1.Canary); ok {
			t.Fatal("without -watch-label-selector every Canary must be cached")
		}
	}

	one := parseFlags(t, "-watch-label-selector=sharding.herald.dev/key=shard1")
	two := parseFlags(t, "-watch-label-selector=sharding.herald.dev/key=shard2")
	main := parseFlags(t, "-watch-label-selector=!sharding.herald.dev/key")
	leases := map[string]bool{leaseName(nil): true}
	for _, o := range []*options{one, two, main} {
		name := leaseName(o.shard)
		if leases[name] || !strings.HasPrefix(name, "herald-leader-election-") {
			t.Fatalf("shard %q: lease %q is not a lease of its own", o.watchLabelSelector, name)
		}
		leases[name] = true
	}
	if again := parseFlags(t, "-watch-label-selector=sharding.herald.dev/key=shard1"); leaseName(again.shard) != leaseName(one.shard) {
		t.Fatal("replicas of one shard must elect with the same Lease")
	}

	var canaryCache labels.Selector
	for obj, by := range one.cacheOptions().ByObject {
		if _, ok := obj.(*flaggerv1.Canary); ok {
			canaryCache = by.Label
		}
	}
	if canaryCache == nil {
		t.Fatal("a shard must cache only its Canaries")
	}
	for set, want := range map[string]bool{"sharding.herald.dev/key=shard1": true, "sharding.herald.dev/key=shard2": false, "": false} {
		ls, _ := labels.ConvertSelectorToLabelsMap(set)
		if got := canaryCache.Matches(ls); got != want {
			t.Errorf("shard1's cache takes a Canary labelled %q: %v, want %v", set, got, want)
		}
		if got := main.shard.Matches(ls); got != (set == "") {
			t.Errorf("the main shard takes a Canary labelled %q: %v", set, got)
		}
	}
}

func TestShardSelectorErrorNamesTheFlag(t *testing.T) {
	_, err := parse(t, "-watch-label-selector=key in (a", "-enable-webhooks=false")
	if err == nil || !strings.Contains(err.Error(), "-watch-label-selector") {
		t.Fatalf("error %v, want one naming -watch-label-selector", err)
	}
}

// The cache keeps no managed fields (most of a small object's bytes) but who wrote a target
// when, which the detection latency reads; a primary, updated from its cached copy, keeps none.
func TestCacheKeepsOnlyTargetsWriteTimes(t *testing.T) {
	written := metav1.NewTime(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	managed := func() []metav1.ManagedFieldsEntry {
		return []metav1.ManagedFieldsEntry{{Manager: "kubectl", Time: &written, FieldsV1: metav1.NewFieldsV1(`{"f:spec":{}}`)}}
	}
	transform := (&options{}).cacheOptions().DefaultTransform
	if transform == nil {
		t.Fatal("the manager's cache has no transform")
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed()}}
	if _, err := transform(d); err != nil {
		t.Fatal(err)
	}
	if len(d.ManagedFields) != 1 || d.ManagedFields[0].FieldsV1 != nil || !d.ManagedFields[0].Time.Equal(&written) || d.ManagedFields[0].Manager != "kubectl" {
		t.Errorf("target's managed fields: %+v, want who wrote it when, without the fields", d.ManagedFields)
	}
	primary := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed(), Labels: map[string]string{contract.LabelPrimaryOf: "podinfo"}}}
	if _, err := transform(primary); err != nil {
		t.Fatal(err)
	}
	if primary.ManagedFields != nil {
		t.Errorf("primary's managed fields kept: %+v (an update of the cached copy would send them back)", primary.ManagedFields)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed()}}
	if _, err := transform(svc); err != nil {
		t.Fatal(err)
	}
	if svc.ManagedFields != nil {
		t.Errorf("service's managed fields kept: %+v", svc.ManagedFields)
	}
}
