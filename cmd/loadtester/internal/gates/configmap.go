/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package gates

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// maxAttempts bounds the read-modify-write rounds of a Set that keeps losing the race
// to other writers (replicas opening other gates at the same moment); between two rounds
// it waits a random time that doubles from firstBackoff up to maxBackoff, so that the
// writers stop colliding.
const (
	maxAttempts  = 10
	firstBackoff = 10 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
)

// ConfigMapStore keeps the gates in a ConfigMap, under the key FileName, as the same
// document as the state file. Every call reads the ConfigMap, so that replicas (and a
// replacement pod) agree; every change is a read-modify-write guarded by the
// ConfigMap's resourceVersion, retried when another writer came first, so that no
// change is lost. The load tester needs get and update on the ConfigMap, and create
// only if it does not exist yet.
type ConfigMapStore struct {
	client          kubernetes.Interface
	namespace, name string
	// writing serialises this process's writes: they would only collide with each other.
	writing sync.Mutex
}

var _ Store = (*ConfigMapStore)(nil)

// NewConfigMapStore returns the store kept in the ConfigMap namespace/name.
func NewConfigMapStore(client kubernetes.Interface, namespace, name string) *ConfigMapStore {
	return &ConfigMapStore{client: client, namespace: namespace, name: name}
}

// Where names the ConfigMap.
func (s *ConfigMapStore) Where() string {
	return fmt.Sprintf("ConfigMap %s/%s", s.namespace, s.name)
}

// Check reads the ConfigMap once, so that a missing permission or a broken document is
// reported when the load tester starts rather than at the first gate call.
func (s *ConfigMapStore) Check(ctx context.Context) error {
	_, _, err := s.read(ctx)
	return err
}

// IsOpen reads the ConfigMap; a missing ConfigMap holds no open gate.
func (s *ConfigMapStore) IsOpen(ctx context.Context, k Kind, id ID) (bool, error) {
	_, st, err := s.read(ctx)
	if err != nil {
		return false, err
	}
	return st.set(k)[id], nil
}

// Set writes the change with the resourceVersion it was read at, creating the ConfigMap
// if it does not exist, and starts over when another writer changed it in between.
func (s *ConfigMapStore) Set(ctx context.Context, k Kind, id ID, open bool) error {
	s.writing.Lock()
	defer s.writing.Unlock()
	backoff := firstBackoff
	for attempt := range maxAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("saving the gate state in %s: %w", s.Where(), ctx.Err())
			case <-time.After(backoff/2 + rand.N(backoff)): //nolint:gosec // jitter, not a secret
			}
			backoff = min(2*backoff, maxBackoff)
		}
		cm, st, err := s.read(ctx)
		if err != nil {
			return err
		}
		next, changed := st.with(k, id, open)
		if !changed {
			return nil
		}
		b, err := encode(next)
		if err != nil {
			return err
		}
		if cm == nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Namespace: s.namespace, Name: s.name,
				Labels: map[string]string{"app.kubernetes.io/part-of": "herald", "app.kubernetes.io/component": "loadtester"},
			}}
			cm.Data = map[string]string{FileName: string(b)}
			_, err = s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
		} else {
			cm = cm.DeepCopy()
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[FileName] = string(b)
			_, err = s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			continue // another writer came first: read its change and apply ours to it
		default:
			return fmt.Errorf("saving the gate state in %s: %w", s.Where(), err)
		}
	}
	return fmt.Errorf("saving the gate state in %s: it changed under every one of %d attempts", s.Where(), maxAttempts)
}

// fieldManager names the load tester in the ConfigMap's managedFields.
const fieldManager = "herald-loadtester"

// read returns the ConfigMap (nil when it does not exist) and its state.
func (s *ConfigMapStore) read(ctx context.Context) (*corev1.ConfigMap, state, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, newState(), nil
	}
	if err != nil {
		return nil, state{}, fmt.Errorf("reading the gate state from %s: %w", s.Where(), err)
	}
	doc, ok := cm.Data[FileName]
	if !ok {
		// A ConfigMap created empty (as config/loadtester ships it) holds no open gate.
		return cm, newState(), nil
	}
	st, err := decode([]byte(doc), fmt.Sprintf("%s key %s", s.Where(), FileName))
	if err != nil {
		return nil, state{}, err
	}
	return cm, st, nil
}
