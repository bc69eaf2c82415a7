/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package canary

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	flaggerv1 "github.com/herald-rollouts/herald/api/v1beta1"
	"github.com/herald-rollouts/herald/controllers/metricchecks"
	"github.com/herald-rollouts/herald/internal/egress"
)

// SupportedMetricProviders are the MetricTemplate provider types Herald implements.
var SupportedMetricProviders = []string{flaggerv1.MetricProviderPrometheus}

// SupportedAlertProviders are the AlertProvider types Herald implements.
var SupportedAlertProviders = []string{
	flaggerv1.AlertProviderSlack, flaggerv1.AlertProviderMSTeams, flaggerv1.AlertProviderDiscord,
	flaggerv1.AlertProviderRocket, flaggerv1.AlertProviderGChat, flaggerv1.AlertProviderWebhook,
}

// checkHTTPURL reports whether raw is an absolute http or https URL with a host. A
// sensitive URL (it may carry a token, like a chat webhook address) is not echoed back.
func checkHTTPURL(p *field.Path, raw string, sensitive bool) *field.Error {
	invalid := func(detail string) *field.Error {
		if sensitive {
			return &field.Error{Type: field.ErrorTypeInvalid, Field: p.String(), BadValue: field.OmitValueType{}, Detail: detail}
		}
		return field.Invalid(p, raw, detail)
	}
	if raw == "" {
		return field.Required(p, "an absolute http or https URL")
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return invalid("must be an absolute http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("the scheme must be http or https")
	}
	if u.Host == "" {
		return invalid("must name a host")
	}
	// Link-local and cloud metadata addresses are refused whatever Herald's flags; the
	// controller refuses them again when it dials (and loopback when -egress-allow-loopback
	// is false), since a name may resolve to one later.
	if err := (egress.Policy{}).CheckHost(u.Hostname()); err != nil {
		var refused *egress.RefusedError
		if errors.As(err, &refused) {
			return &field.Error{Type: field.ErrorTypeForbidden, Field: p.String(), BadValue: field.OmitValueType{},
				Detail: fmt.Sprintf("%s is %s: Herald does not call such addresses", refused.Address, refused.Reason)}
		}
		return invalid(err.Error())
	}
	return nil
}

// MetricTemplateValidator validates MetricTemplates.
type MetricTemplateValidator struct{}

var _ admission.Validator[*flaggerv1.MetricTemplate] = (*MetricTemplateValidator)(nil)

// ValidateCreate checks a new MetricTemplate.
func (*MetricTemplateValidator) ValidateCreate(_ context.Context, t *flaggerv1.MetricTemplate) (admission.Warnings, error) {
	return nil, validateMetricTemplate(t)
}

// ValidateUpdate checks the new MetricTemplate unless its spec is unchanged.
func (*MetricTemplateValidator) ValidateUpdate(_ context.Context, oldObj, newObj *flaggerv1.MetricTemplate) (admission.Warnings, error) {
	if oldObj != nil && newObj != nil && reflect.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	return nil, validateMetricTemplate(newObj)
}

// ValidateDelete allows every delete.
func (*MetricTemplateValidator) ValidateDelete(context.Context, *flaggerv1.MetricTemplate) (admission.Warnings, error) {
	return nil, nil
}

func validateMetricTemplate(t *flaggerv1.MetricTemplate) error {
	if t == nil {
		return nil
	}
	var errs field.ErrorList
	pp := field.NewPath("spec", "provider")
	prov := &t.Spec.Provider
	switch {
	case prov.Type == "":
		errs = append(errs, field.Required(pp.Child("type"), "one of "+quoted(SupportedMetricProviders)))
	case !slices.Contains(SupportedMetricProviders, prov.Type):
		errs = append(errs, field.NotSupported(pp.Child("type"), prov.Type, SupportedMetricProviders))
	}
	if prov.Address != "" {
		if e := checkHTTPURL(pp.Child("address"), prov.Address, false); e != nil {
			errs = append(errs, e)
		}
	}
	if prov.SecretRef != nil && prov.SecretRef.Name == "" {
		errs = append(errs, field.Required(pp.Child("secretRef", "name"), ""))
	}
	qp := field.NewPath("spec", "query")
	if t.Spec.Query == "" {
		errs = append(errs, field.Required(qp, ""))
	} else if err := metricchecks.ValidateQuery(t.Spec.Query); err != nil {
		errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: qp.String(), BadValue: field.OmitValueType{},
			Detail: err.Error()})
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(flaggerv1.GroupVersion.WithKind(flaggerv1.MetricTemplateKind).GroupKind(), t.Name, errs)
}

// AlertProviderValidator validates AlertProviders.
type AlertProviderValidator struct{}

var _ admission.Validator[*flaggerv1.AlertProvider] = (*AlertProviderValidator)(nil)

// ValidateCreate checks a new AlertProvider.
func (*AlertProviderValidator) ValidateCreate(_ context.Context, a *flaggerv1.AlertProvider) (admission.Warnings, error) {
	return nil, validateAlertProvider(a)
}

// ValidateUpdate checks the new AlertProvider unless its spec is unchanged.
func (*AlertProviderValidator) ValidateUpdate(_ context.Context, oldObj, newObj *flaggerv1.AlertProvider) (admission.Warnings, error) {
	if oldObj != nil && newObj != nil && reflect.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	return nil, validateAlertProvider(newObj)
}

// ValidateDelete allows every delete.
func (*AlertProviderValidator) ValidateDelete(context.Context, *flaggerv1.AlertProvider) (admission.Warnings, error) {
	return nil, nil
}

func validateAlertProvider(a *flaggerv1.AlertProvider) error {
	if a == nil {
		return nil
	}
	var errs field.ErrorList
	sp := field.NewPath("spec")
	switch {
	case a.Spec.Type == "":
		errs = append(errs, field.Required(sp.Child("type"), "one of "+quoted(SupportedAlertProviders)))
	case !slices.Contains(SupportedAlertProviders, a.Spec.Type):
		errs = append(errs, field.NotSupported(sp.Child("type"), a.Spec.Type, SupportedAlertProviders))
	}
	switch {
	case a.Spec.Address != "":
		if e := checkHTTPURL(sp.Child("address"), a.Spec.Address, true); e != nil {
			errs = append(errs, e)
		}
	case a.Spec.SecretRef == nil:
		errs = append(errs, field.Required(sp.Child("address"), "set address or secretRef (a Secret with the key address)"))
	}
	if a.Spec.SecretRef != nil && a.Spec.SecretRef.Name == "" {
		errs = append(errs, field.Required(sp.Child("secretRef", "name"), ""))
	}
	if a.Spec.Proxy != "" {
		if e := checkHTTPURL(sp.Child("proxy"), a.Spec.Proxy, true); e != nil {
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(flaggerv1.GroupVersion.WithKind(flaggerv1.AlertProviderKind).GroupKind(), a.Name, errs)
}
