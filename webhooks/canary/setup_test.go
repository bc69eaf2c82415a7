/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
)

// TestSetupWithManager registers the three webhooks at the paths of the markers. The
// manager never starts; the reader is not the manager's cache, so nothing is watched.
func TestSetupWithManager(t *testing.T) {
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Scheme:  testScheme(t),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := SetupWithManager(mgr, Options{Reader: fakeReader(t)}); err != nil {
		t.Fatal(err)
	}
	mux := mgr.GetWebhookServer().WebhookMux()
	for _, path := range []string{
		"/validate-flagger-app-v1beta1-canary",
		"/validate-flagger-app-v1beta1-metrictemplate",
		"/validate-flagger-app-v1beta1-alertprovider",
	} {
		if _, pattern := mux.Handler(httptest.NewRequest("POST", path, nil)); pattern != path {
			t.Errorf("%s: not registered (matched %q)", path, pattern)
		}
	}
}

// TestHandlerResponse drives the Canary validator through controller-runtime's admission
// handler: the Invalid status passes through with its causes, warnings come along, and the
// namespace of the request is used when the object carries none.
func TestHandlerResponse(t *testing.T) {
	c := validCanary()
	c.Namespace = ""
	c.Spec.Analysis.StepWeight = 70
	c.Spec.Analysis.Alerts[0].ProviderRef.Name = "missing"
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := admission.WithValidator[*flaggerv1.Canary](testScheme(t),
		NewCanaryValidator(Options{Reader: fakeReader(t, validObjects()...)}))
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Create, Namespace: "test", Name: "podinfo",
		Object: runtime.RawExtension{Raw: raw},
	}})
	if resp.Allowed {
		t.Fatal("allowed")
	}
	if resp.Result.Code != 422 || resp.Result.Reason != metav1.StatusReasonInvalid ||
		resp.Result.Details == nil || len(resp.Result.Details.Causes) != 1 ||
		resp.Result.Details.Causes[0].Field != "spec.analysis.stepWeight" {
		t.Errorf("result %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "AlertProvider test/missing does not exist") {
		t.Errorf("warnings %q", resp.Warnings)
	}
	t.Logf("message: %s", resp.Result.Message)
	t.Logf("warnings: %q", resp.Warnings)
}
