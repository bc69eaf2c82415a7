package router

// The istio provider creates, reads and updates the VirtualService and DestinationRules of
// each Canary; list and watch let the manager's cache serve them and trigger reconciles.
//
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;create;update;patch;delete
