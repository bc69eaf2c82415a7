package main

// RBAC of the manager, generated into config/rbac by `make manifests`: a ClusterRole with what
// the controller and the webhooks use cluster-wide, and a Role in Herald's namespace for what
// only concerns Herald itself (its leader-election Lease, its certificate Secret). Only the
// verbs the code uses: Herald deletes only a primary workload (owner references let the garbage
// collector remove the rest of what it generated), and of the webhook configurations it may touch only
// its own two. Later features add their own markers next to their code.

// +kubebuilder:rbac:groups=flagger.app,resources=canaries,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=flagger.app,resources=metrictemplates;alertproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=flagger.app,resources=canaries/status,verbs=patch
// +kubebuilder:rbac:groups=flagger.app,resources=canaries/finalizers,verbs=update
// The primary workload is deleted with its Canary (the rest goes with it, by owner reference).
// +kubebuilder:rbac:groups=apps,resources=deployments;daemonsets;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,resourceNames=herald-mutating;herald-validating,verbs=get;list;watch;patch
// /metrics is served behind a TokenReview and a SubjectAccessReview per caller (internal/metricsauth).
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// In Herald's namespace only (kustomize's namespace transformer follows an install into
// another one): the leader-election Lease, and the webhook certificate Secret that
// cert-controller rotates with update (Kubernetes cannot limit create to a name; the
// ClusterRole's create on Secrets covers its first creation).
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=herald-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,resourceNames=herald-webhook-cert,verbs=update
