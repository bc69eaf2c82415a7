/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package logging

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range [][2]string{{"info", "json"}, {"debug", "console"}, {"error", "json"}} {
		if err := Validate(ok[0], ok[1]); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	err := Validate("loud", "xml")
	if err == nil || !strings.Contains(err.Error(), "-log-level") || !strings.Contains(err.Error(), `-log-encoding "xml": use json or console`) {
		t.Errorf("want both flags named, got %v", err)
	}
}

func TestNewHonoursTheLevel(t *testing.T) {
	log := New("warn", "json")
	if log.V(0).Enabled() {
		t.Error("info is enabled at warn level")
	}
	if !New("debug", "console").V(1).Enabled() {
		t.Error("debug (V(1)) is not enabled at debug level")
	}
	if !New("nonsense", "json").V(0).Enabled() || New("nonsense", "json").V(1).Enabled() {
		t.Error("an invalid level does not fall back to info")
	}
}
