/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertProviderKind is the kind name of an AlertProvider.
const AlertProviderKind = "AlertProvider"

// Alert provider types.
const (
	AlertProviderSlack   = "slack"
	AlertProviderMSTeams = "msteams"
	AlertProviderDiscord = "discord"
	AlertProviderRocket  = "rocket"
	AlertProviderGChat   = "gchat"
	// AlertProviderWebhook is Herald's own type: the alert is POSTed as generic JSON.
	AlertProviderWebhook = "webhook"
)

// AlertProvider is a chat service that receives the alerts of Canaries.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=all
// +kubebuilder:metadata:annotations="helm.sh/resource-policy=keep"
// +kubebuilder:printcolumn:name="Type",type="string",JSONPath=".spec.type"
type AlertProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AlertProviderSpec `json:"spec"`

	// +optional
	Status AlertProviderStatus `json:"status,omitzero"`
}

// AlertProviderList is a list of AlertProviders.
//
// +kubebuilder:object:root=true
type AlertProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []AlertProvider `json:"items"`
}

// AlertProviderSpec is the desired state of an AlertProvider. The webhook address is given
// inline or, under the key "address", in the Secret named by secretRef.
//
// +kubebuilder:validation:XValidation:rule="(has(self.address) && size(self.address) > 0) || has(self.secretRef)",message="address or secretRef is required",fieldPath=".address"
type AlertProviderSpec struct {
	// Type of the provider.
	// +kubebuilder:validation:Enum=slack;msteams;discord;rocket;gchat;webhook
	Type string `json:"type"`

	// Channel the alerts are posted to (default general).
	// +optional
	Channel string `json:"channel,omitempty"`

	// Username the alerts are posted as (default flagger, as in Flagger, so chat rules
	// keyed on the sender keep working).
	// +optional
	Username string `json:"username,omitempty"`

	// Address is the webhook URL of the provider.
	// +optional
	Address string `json:"address,omitempty"`

	// Proxy is an HTTP(S) proxy used to reach the provider.
	// +optional
	Proxy string `json:"proxy,omitempty"`

	// SecretRef names a Secret, in the provider's namespace, with the key "address" and
	// optionally "token" (sent as a Bearer token).
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// AlertProviderStatus is the observed state of an AlertProvider.
type AlertProviderStatus struct {
	// +optional
	Conditions []AlertProviderCondition `json:"conditions,omitempty"`
}

// AlertProviderCondition is a condition of an AlertProvider.
type AlertProviderCondition struct {
	Type   string                 `json:"type"`
	Status corev1.ConditionStatus `json:"status"`
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitzero"`
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitzero"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

func init() {
	SchemeBuilder.Register(&AlertProvider{}, &AlertProviderList{})
}
