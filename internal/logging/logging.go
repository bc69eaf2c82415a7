/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package logging builds the logr logger of Herald's binaries (the manager and the load
// tester) from their -log-level and -log-encoding flags, so that both log alike: zap
// behind logr, JSON by default as log pipelines expect, ISO 8601 times under "ts".
package logging

import (
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Encodings are the values of -log-encoding.
const (
	JSON    = "json"
	Console = "console"
)

// Validate checks the values of -log-level (debug, info, warn, error...) and
// -log-encoding; the error names the flag of each bad value.
func Validate(level, encoding string) error {
	var errs []error
	if _, err := zapcore.ParseLevel(level); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	if encoding != JSON && encoding != Console {
		errs = append(errs, fmt.Errorf("-log-encoding %q: use %s or %s", encoding, JSON, Console))
	}
	return errors.Join(errs...)
}

// New returns the logger for level and encoding, which Validate has accepted; a value it
// would refuse falls back to info and JSON. Stack traces are kept for debug level only.
func New(level, encoding string) logr.Logger {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		lvl = zapcore.InfoLevel
	}
	cfg := zap.NewProductionConfig()
	if encoding == Console {
		cfg = zap.NewDevelopmentConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableStacktrace = lvl > zapcore.DebugLevel
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	z, err := cfg.Build()
	if err != nil {
		panic(fmt.Sprintf("building logger: %v", err)) // only on an invalid static config
	}
	return zapr.NewLogger(z)
}
