/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package gates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func isOpen(t *testing.T, s Store, k Kind, id ID) bool {
	t.Helper()
	open, err := s.IsOpen(t.Context(), k, id)
	if err != nil {
		t.Fatal(err)
	}
	return open
}

func TestGatesAreClosedByDefaultAndSurviveAReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if isOpen(t, s, Confirm, ID{"test", "podinfo"}) || isOpen(t, s, Rollback, ID{"test", "podinfo"}) {
		t.Fatal("a gate is open by default")
	}
	if err := s.Set(t.Context(), Confirm, ID{"test", "podinfo"}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(t.Context(), Rollback, ID{"test", "other"}, true); err != nil {
		t.Fatal(err)
	}
	if !isOpen(t, s, Confirm, ID{"test", "podinfo"}) || isOpen(t, s, Rollback, ID{"test", "podinfo"}) || isOpen(t, s, Confirm, ID{"prod", "podinfo"}) {
		t.Fatal("gates are not independent per kind and Canary")
	}

	// A restarted load tester reads the same directory.
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !isOpen(t, again, Confirm, ID{"test", "podinfo"}) || !isOpen(t, again, Rollback, ID{"test", "other"}) {
		t.Fatal("open gates were lost over a restart")
	}
	if err := again.Set(t.Context(), Confirm, ID{"test", "podinfo"}, false); err != nil {
		t.Fatal(err)
	}
	third, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if isOpen(t, third, Confirm, ID{"test", "podinfo"}) {
		t.Fatal("a closed gate came back open after a restart")
	}
	if !isOpen(t, third, Rollback, ID{"test", "other"}) {
		t.Fatal("closing one gate lost another")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Errorf("the state directory holds %v, want only %s (no temporary files left)", entries, FileName)
	}
}

func TestMemoryOnlyStore(t *testing.T) {
	s, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(t.Context(), Confirm, ID{"a", "b"}, true); err != nil || !isOpen(t, s, Confirm, ID{"a", "b"}) || s.Path() != "" {
		t.Fatalf("memory store: %v", err)
	}
}

func TestUnreadableStateIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("want an error naming the broken file, got %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"version": 9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("want a version error, got %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"version": 1, "gates": {"podinfo": true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), `"podinfo" is not namespace/name`) {
		t.Errorf("want a key error, got %v", err)
	}
}

// The file keeps the format earlier versions wrote: keys namespace/name.
func TestStateFileFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(`{"version": 1, "gates": {"test/podinfo": true}, "rollbacks": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !isOpen(t, s, Confirm, ID{"test", "podinfo"}) {
		t.Fatal("a gate written as test/podinfo is not open")
	}
	if err := s.Set(t.Context(), Rollback, ID{"prod", "api"}, true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.Contains(string(b), `"prod/api": true`) || !strings.Contains(string(b), `"test/podinfo": true`) {
		t.Errorf("state file: %s", b)
	}
}

func TestFailedSaveLeavesTheGateUnchanged(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where the file should go: the rename fails, even for root.
	if err := os.MkdirAll(filepath.Join(dir, FileName, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(t.Context(), Confirm, ID{"test", "podinfo"}, true); err == nil || !strings.Contains(err.Error(), "saving the gate state") {
		t.Fatalf("want a save error, got %v", err)
	}
	if isOpen(t, s, Confirm, ID{"test", "podinfo"}) {
		t.Error("the gate opened in memory although it was not saved")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("a failed save left files behind: %v", entries)
	}
}
