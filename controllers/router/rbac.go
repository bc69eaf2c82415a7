package router

// The istio provider creates, reads and updates the VirtualService and DestinationRules of
// each Canary; list and watch let the manager's cache serve them and trigger reconciles.
//
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;create;update;patch

// The gatewayapi provider creates, reads, updates and, on Canary deletion, deletes or restores
// the HTTPRoute or GRPCRoute of each Canary; list and watch serve the manager's cache.
//
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch;create;update;patch;delete
