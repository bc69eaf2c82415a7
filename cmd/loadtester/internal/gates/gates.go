/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package gates keeps the load tester's manual gates: the confirmation gate of each
// Canary (/gate/check, /gate/open, /gate/close) and its rollback gate (/rollback/...).
// Gates are closed unless opened, as in Flagger. Unlike Flagger, whose gates live in
// memory and are lost when the load tester restarts (an approved rollout then waits
// again, or a requested rollback is forgotten), a change is saved before it is
// acknowledged: in a Kubernetes ConfigMap (ConfigMapStore), which survives the pod and is
// shared by replicas, or in a small JSON file (FileStore) for local runs.
package gates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FileName is the state file's name in the state directory, and the ConfigMap key that
// holds the same document.
const FileName = "gates.json"

// fileVersion is the format of the state document.
const fileVersion = 1

// Kind is a kind of gate.
type Kind string

const (
	// Confirm is the gate that /gate/check reports (open: proceed).
	Confirm Kind = "gate"
	// Rollback is the gate that /rollback/check reports (open: roll back).
	Rollback Kind = "rollback"
)

// ID names the Canary a gate belongs to. Its text form, namespace/name, is the key of the
// state document; it is unambiguous because the load tester only accepts DNS-1123 names
// and namespaces, which hold no '/'.
type ID struct {
	Namespace string
	Name      string
}

func (id ID) String() string { return id.Namespace + "/" + id.Name }

// MarshalText writes namespace/name.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads namespace/name.
func (id *ID) UnmarshalText(b []byte) error {
	ns, name, ok := strings.Cut(string(b), "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("gate key %q is not namespace/name", b)
	}
	*id = ID{Namespace: ns, Name: name}
	return nil
}

// Store keeps the gates. Implementations are safe for concurrent use.
type Store interface {
	// IsOpen reports whether the gate of kind k of the Canary id is open.
	IsOpen(ctx context.Context, k Kind, id ID) (bool, error)
	// Set opens or closes a gate and saves it before returning. On error the gate is
	// unchanged.
	Set(ctx context.Context, k Kind, id ID, open bool) error
	// Where says where the gates are kept, for logs.
	Where() string
}

// state is the saved document. Only open gates are listed: a gate is closed by default.
type state struct {
	Version   int         `json:"version"`
	Gates     map[ID]bool `json:"gates"`
	Rollbacks map[ID]bool `json:"rollbacks"`
}

func newState() state {
	return state{Version: fileVersion, Gates: map[ID]bool{}, Rollbacks: map[ID]bool{}}
}

func (s *state) set(k Kind) map[ID]bool {
	if k == Rollback {
		return s.Rollbacks
	}
	return s.Gates
}

func (s *state) clone() state {
	c := newState()
	for k, v := range s.Gates {
		c.Gates[k] = v
	}
	for k, v := range s.Rollbacks {
		c.Rollbacks[k] = v
	}
	return c
}

// with returns a copy of s with the gate changed, and whether that is a change.
func (s *state) with(k Kind, id ID, open bool) (state, bool) {
	if s.set(k)[id] == open {
		return *s, false
	}
	next := s.clone()
	if open {
		next.set(k)[id] = true
	} else {
		delete(next.set(k), id)
	}
	return next, true
}

// decode reads a state document; where names it in errors. A document that cannot be
// read is an error rather than a silent reset: an approved rollout would otherwise wait
// again, or a requested rollback be forgotten.
func decode(b []byte, where string) (state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("the gate state %s is not valid JSON (fix or remove it): %w", where, err)
	}
	if st.Version != fileVersion {
		return state{}, fmt.Errorf("the gate state %s has version %d; this load tester reads version %d", where, st.Version, fileVersion)
	}
	return st.clone(), nil
}

func encode(st state) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the gate state: %w", err)
	}
	return append(b, '\n'), nil
}

// FileStore keeps the gates in memory and, unless it is memory-only, in a file written
// atomically. One process owns the file: replicas do not share it.
type FileStore struct {
	path string // empty: memory only

	mu    sync.Mutex
	state state
}

var _ Store = (*FileStore)(nil)

// Open returns the store kept in dir, creating dir if needed and reading the gates saved
// there by an earlier run. With dir "", gates are kept in memory only.
func Open(dir string) (*FileStore, error) {
	s := &FileStore{state: newState()}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	s.path = filepath.Join(dir, FileName)
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the gate state: %w", err)
	}
	if s.state, err = decode(b, s.path); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the state file, "" when the gates are kept in memory only.
func (s *FileStore) Path() string { return s.path }

// Where is the state file, or says that the gates are in memory only.
func (s *FileStore) Where() string {
	if s.path == "" {
		return "memory only (lost on restart)"
	}
	return "file " + s.path
}

// IsOpen reports whether a gate is open; it never fails.
func (s *FileStore) IsOpen(_ context.Context, k Kind, id ID) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.set(k)[id], nil
}

// Set opens or closes a gate and writes the file before returning.
func (s *FileStore) Set(_ context.Context, k Kind, id ID, open bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, changed := s.state.with(k, id, open)
	if !changed {
		return nil
	}
	if s.path != "" {
		if err := writeAtomic(s.path, next); err != nil {
			return fmt.Errorf("saving the gate state: %w", err)
		}
	}
	s.state = next
	return nil
}

// writeAtomic replaces path with st so that a crash leaves either the old or the new
// file, never a partial one: write a temporary file in the same directory, flush it,
// rename it over path, and flush the directory so the rename itself is durable.
func writeAtomic(path string, st state) error {
	b, err := encode(st)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
