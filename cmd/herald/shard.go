package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
)

// Sharding, the Flux way: each Herald instance (a Deployment of its own, leader-elected within
// itself) reconciles only the Canaries whose labels match its -watch-label-selector, e.g.
// sharding.herald.dev/key=shard1 on one instance, sharding.herald.dev/key=shard2 on another and
// !sharding.herald.dev/key on the main one. Webhooks are not sharded: every instance serves them
// for every object, as an admission call cannot pick its shard.

// defaultLeaseName is the leader-election Lease of an unsharded Herald.
const defaultLeaseName = "herald-leader-election"

// shardSelector parses -watch-label-selector; nil when it is empty (every Canary).
func shardSelector(s string) (labels.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-watch-label-selector %q: %w", s, err)
	}
	if sel.Empty() {
		return nil, nil
	}
	return sel, nil
}

// leaseName is the Lease the replicas of one shard elect their leader with: each shard needs
// its own, or the leader of one shard would keep every other shard's replicas waiting. It is
// derived from the selector so that replicas of a shard agree on it without another flag.
func leaseName(sel labels.Selector) string {
	if sel == nil {
		return defaultLeaseName
	}
	sum := sha256.Sum256([]byte(sel.String()))
	return defaultLeaseName + "-" + hex.EncodeToString(sum[:])[:10]
}
