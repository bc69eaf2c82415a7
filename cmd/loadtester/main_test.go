/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func parseFlags(t *testing.T, args ...string) (options, error) {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("loadtester", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	_, err := o.validate()
	return o, err
}

func TestFlagsDefaultsAndRepeatedAllowCommand(t *testing.T) {
	o, err := parseFlags(t, "-allow-command", `helm test \S+`, "-allow-command", `curl -s http://x/\d{1,3}`)
	if err != nil {
		t.Fatal(err)
	}
	if o.port != 8080 || o.maxLoads != 10 || o.maxWorkers != 500 || len(o.allowCommands) != 2 || o.allowCommands[1] != `curl -s http://x/\d{1,3}` {
		t.Errorf("options: %+v", o)
	}
	o, err = parseFlags(t)
	if err != nil || len(o.allowCommands) != 0 {
		t.Errorf("by default no command is allowed: %+v %v", o.allowCommands, err)
	}
}

func TestBadFlagsAreReportedTogether(t *testing.T) {
	_, err := parseFlags(t, "-port", "0", "-allow-command", "(", "-namespace-regexp", "[", "-timeout", "0s",
		"-log-level", "loud", "-log-encoding", "xml", "-max-loads", "0", "-max-workers", "-1", "-state-configmap", "gates")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"-port 0", "-allow-command", "-namespace-regexp", "-timeout", "-log-level", "-log-encoding", "-max-loads 0", "-max-workers -1", `-state-configmap "gates": use <namespace>/<name>`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

func TestGateTokenFromTheEnvironment(t *testing.T) {
	t.Setenv(gateTokenEnv, "from-secret")
	if o, err := parseFlags(t); err != nil || o.gateToken != "from-secret" {
		t.Errorf("env: %q %v", o.gateToken, err)
	}
	if o, _ := parseFlags(t, "-gate-token", "flag"); o.gateToken != "flag" {
		t.Errorf("the flag does not win: %q", o.gateToken)
	}
}

func TestStateConfigMapFlag(t *testing.T) {
	var o options
	fs := flag.NewFlagSet("loadtester", flag.ContinueOnError)
	o.bind(fs)
	if err := fs.Parse([]string{"-state-configmap", "test/flagger-loadtester-gates"}); err != nil {
		t.Fatal(err)
	}
	c, err := o.validate()
	if err != nil || c.configMap.Namespace != "test" || c.configMap.Name != "flagger-loadtester-gates" {
		t.Errorf("%+v %v", c.configMap, err)
	}
	if _, err := parseFlags(t, "-state-configmap", "Test/x_y"); err == nil || !strings.Contains(err.Error(), "not a namespace and a ConfigMap name") {
		t.Errorf("invalid names: %v", err)
	}
}
