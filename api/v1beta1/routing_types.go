/*
Copyright 2026 The Herald Authors.

Licensed under the Apache License, Version 2.0.
*/

package v1beta1

// This file holds the routing settings of spec.service and spec.analysis.match. They have the
// shape of the Istio networking API (VirtualService and DestinationRule fields) and of the
// Gateway API (parent references and mirror filters), so that a Canary reads like the objects
// generated from it. They are declared here rather than imported to keep the API package free
// of mesh dependencies.

// StringMatch matches a string exactly, by prefix, by suffix or by an RE2 regular expression.
// Set one of the fields.
type StringMatch struct {
	// +optional
	Exact string `json:"exact,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Suffix string `json:"suffix,omitempty"`
	// +optional
	Regex string `json:"regex,omitempty"`
}

// HTTPMatchRequest is a set of conditions that an HTTP request must all meet.
type HTTPMatchRequest struct {
	// Name of the match, reported in access logs.
	// +optional
	Name string `json:"name,omitempty"`

	// URI of the request.
	// +optional
	URI *StringMatch `json:"uri,omitempty"`

	// Scheme of the request.
	// +optional
	Scheme *StringMatch `json:"scheme,omitempty"`

	// Method of the request.
	// +optional
	Method *StringMatch `json:"method,omitempty"`

	// Authority (host) of the request.
	// +optional
	Authority *StringMatch `json:"authority,omitempty"`

	// Headers of the request, by lower-case name.
	// +optional
	Headers map[string]StringMatch `json:"headers,omitempty"`

	// Port the request was addressed to.
	// +optional
	Port int32 `json:"port,omitempty"`

	// SourceLabels are labels of the calling workload.
	// +optional
	SourceLabels map[string]string `json:"sourceLabels,omitempty"`

	// Gateways the rule applies to.
	// +optional
	Gateways []string `json:"gateways,omitempty"`

	// QueryParams of the request.
	// +optional
	QueryParams map[string]StringMatch `json:"queryParams,omitempty"`

	// IgnoreURICase makes the uri match case-insensitive.
	// +optional
	IgnoreURICase bool `json:"ignoreUriCase,omitempty"`

	// WithoutHeaders are headers that the request must not match.
	// +optional
	WithoutHeaders map[string]StringMatch `json:"withoutHeaders,omitempty"`

	// SourceNamespace of the calling workload.
	// +optional
	SourceNamespace string `json:"sourceNamespace,omitempty"`

	// StatPrefix of the generated metrics of the match.
	// +optional
	StatPrefix string `json:"statPrefix,omitempty"`
}

// HTTPRewrite rewrites the URI or authority of a request before it is forwarded.
type HTTPRewrite struct {
	// URI replaces the path (or the matched prefix).
	// +optional
	URI string `json:"uri,omitempty"`

	// Authority replaces the host.
	// +optional
	Authority string `json:"authority,omitempty"`

	// Type of the path rewrite for the Gateway API: ReplacePrefixMatch, or the full path
	// when empty.
	// +optional
	Type string `json:"type,omitempty"`
}

// HTTPRetry is the retry policy of a route.
type HTTPRetry struct {
	// Attempts is the number of retries of a request.
	// +optional
	Attempts int `json:"attempts,omitempty"`

	// PerTryTimeout is the timeout of each attempt, a duration such as 2s.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="must be a duration such as 500ms, 2s or 1m"
	// +optional
	PerTryTimeout string `json:"perTryTimeout,omitempty"`

	// RetryOn lists the conditions that cause a retry, comma separated.
	// +optional
	RetryOn string `json:"retryOn,omitempty"`
}

// Headers are the header operations of a route.
type Headers struct {
	// Request operations, applied before the request is forwarded.
	// +optional
	Request *HeaderOperations `json:"request,omitempty"`

	// Response operations, applied before the response is returned.
	// +optional
	Response *HeaderOperations `json:"response,omitempty"`
}

// HeaderOperations set, append or remove headers.
type HeaderOperations struct {
	// +optional
	Set map[string]string `json:"set,omitempty"`
	// +optional
	Add map[string]string `json:"add,omitempty"`
	// +optional
	Remove []string `json:"remove,omitempty"`
}

// CorsPolicy is the Cross-Origin Resource Sharing policy of a route.
type CorsPolicy struct {
	// AllowOrigin is the deprecated list of exact origins; use AllowOrigins.
	// +optional
	AllowOrigin []string `json:"allowOrigin,omitempty"`

	// AllowOrigins are the origins allowed to make requests.
	// +optional
	AllowOrigins []StringMatch `json:"allowOrigins,omitempty"`

	// +optional
	AllowMethods []string `json:"allowMethods,omitempty"`

	// +optional
	AllowHeaders []string `json:"allowHeaders,omitempty"`

	// +optional
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`

	// MaxAge of the preflight response cache, a duration.
	// +optional
	MaxAge string `json:"maxAge,omitempty"`

	// +optional
	AllowCredentials *bool `json:"allowCredentials,omitempty"`
}

// TrafficPolicy is the traffic policy of the generated Istio DestinationRules.
type TrafficPolicy struct {
	// +optional
	LoadBalancer *LoadBalancerSettings `json:"loadBalancer,omitempty"`
	// +optional
	ConnectionPool *ConnectionPoolSettings `json:"connectionPool,omitempty"`
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// +optional
	TLS *ClientTLSSettings `json:"tls,omitempty"`
	// PortLevelSettings override the policy for single ports.
	// +optional
	PortLevelSettings []PortTrafficPolicy `json:"portLevelSettings,omitempty"`
}

// PortTrafficPolicy is the traffic policy of one port.
type PortTrafficPolicy struct {
	// +optional
	Port *PortSelector `json:"port,omitempty"`
	// +optional
	LoadBalancer *LoadBalancerSettings `json:"loadBalancer,omitempty"`
	// +optional
	ConnectionPool *ConnectionPoolSettings `json:"connectionPool,omitempty"`
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// +optional
	TLS *ClientTLSSettings `json:"tls,omitempty"`
}

// PortSelector selects a port by number.
type PortSelector struct {
	// +optional
	Number int32 `json:"number,omitempty"`
}

// LoadBalancerSettings choose the load-balancing algorithm.
type LoadBalancerSettings struct {
	// +kubebuilder:validation:Enum=UNSPECIFIED;ROUND_ROBIN;LEAST_CONN;RANDOM;PASSTHROUGH;LEAST_REQUEST
	// +optional
	Simple string `json:"simple,omitempty"`
	// +optional
	ConsistentHash *ConsistentHashLB `json:"consistentHash,omitempty"`
	// +optional
	LocalityLbSetting *LocalityLbSetting `json:"localityLbSetting,omitempty"`
	// WarmupDurationSecs is the warm-up duration of new endpoints, a duration.
	// +optional
	WarmupDurationSecs string `json:"warmupDurationSecs,omitempty"`
}

// ConsistentHashLB hashes requests to endpoints for soft session affinity.
type ConsistentHashLB struct {
	// +optional
	HTTPHeaderName string `json:"httpHeaderName,omitempty"`
	// +optional
	HTTPCookie *HTTPCookie `json:"httpCookie,omitempty"`
	// +optional
	UseSourceIP bool `json:"useSourceIp,omitempty"`
	// +optional
	HTTPQueryParameterName string `json:"httpQueryParameterName,omitempty"`
	// +optional
	MinimumRingSize int64 `json:"minimumRingSize,omitempty"`
}

// HTTPCookie is the cookie used as a hash key.
type HTTPCookie struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Path string `json:"path,omitempty"`
	// +optional
	TTL string `json:"ttl,omitempty"`
}

// LocalityLbSetting is locality-aware load balancing.
type LocalityLbSetting struct {
	// +optional
	Distribute []LocalityLbDistribute `json:"distribute,omitempty"`
	// +optional
	Failover []LocalityLbFailover `json:"failover,omitempty"`
	// +optional
	FailoverPriority []string `json:"failoverPriority,omitempty"`
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// LocalityLbDistribute spreads the traffic from one locality over others, by weight.
type LocalityLbDistribute struct {
	// +optional
	From string `json:"from,omitempty"`
	// +optional
	To map[string]int32 `json:"to,omitempty"`
}

// LocalityLbFailover names the region that takes the traffic of another when it fails.
type LocalityLbFailover struct {
	// +optional
	From string `json:"from,omitempty"`
	// +optional
	To string `json:"to,omitempty"`
}

// ConnectionPoolSettings limit the connections to an upstream host.
type ConnectionPoolSettings struct {
	// +optional
	TCP *TCPSettings `json:"tcp,omitempty"`
	// +optional
	HTTP *HTTPSettings `json:"http,omitempty"`
}

// TCPSettings are connection limits common to HTTP and TCP.
type TCPSettings struct {
	// +optional
	MaxConnections int32 `json:"maxConnections,omitempty"`
	// +optional
	ConnectTimeout string `json:"connectTimeout,omitempty"`
	// +optional
	MaxConnectionDuration string `json:"maxConnectionDuration,omitempty"`
	// +optional
	IdleTimeout string `json:"idleTimeout,omitempty"`
	// +optional
	TCPKeepalive *TCPKeepalive `json:"tcpKeepalive,omitempty"`
}

// TCPKeepalive configures TCP keep-alive probes.
type TCPKeepalive struct {
	// +optional
	Probes int32 `json:"probes,omitempty"`
	// +optional
	Time string `json:"time,omitempty"`
	// +optional
	Interval string `json:"interval,omitempty"`
}

// HTTPSettings are connection limits of HTTP/1.1, HTTP/2 and gRPC.
type HTTPSettings struct {
	// +kubebuilder:validation:Enum=DEFAULT;DO_NOT_UPGRADE;UPGRADE
	// +optional
	H2UpgradePolicy string `json:"h2UpgradePolicy,omitempty"`
	// +optional
	HTTP1MaxPendingRequests int32 `json:"http1MaxPendingRequests,omitempty"`
	// +optional
	HTTP2MaxRequests int32 `json:"http2MaxRequests,omitempty"`
	// +optional
	MaxRequestsPerConnection int32 `json:"maxRequestsPerConnection,omitempty"`
	// +optional
	MaxRetries int32 `json:"maxRetries,omitempty"`
	// +optional
	IdleTimeout string `json:"idleTimeout,omitempty"`
	// +optional
	MaxConcurrentStreams int32 `json:"maxConcurrentStreams,omitempty"`
	// +optional
	UseClientProtocol bool `json:"useClientProtocol,omitempty"`
}

// OutlierDetection ejects failing hosts from the load-balancing pool.
type OutlierDetection struct {
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`
	// +optional
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	// +optional
	Consecutive5xxErrors *int32 `json:"consecutive5xxErrors,omitempty"`
	// +optional
	SplitExternalLocalOriginErrors bool `json:"splitExternalLocalOriginErrors,omitempty"`
	// +optional
	ConsecutiveLocalOriginFailures *int32 `json:"consecutiveLocalOriginFailures,omitempty"`
	// +optional
	Interval string `json:"interval,omitempty"`
	// +optional
	BaseEjectionTime string `json:"baseEjectionTime,omitempty"`
	// +optional
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
	// +optional
	MinHealthPercent int32 `json:"minHealthPercent,omitempty"`
}

// ClientTLSSettings secure the connections to an upstream host.
type ClientTLSSettings struct {
	// +kubebuilder:validation:Enum=DISABLE;SIMPLE;MUTUAL;ISTIO_MUTUAL
	// +optional
	Mode string `json:"mode,omitempty"`
	// +optional
	ClientCertificate string `json:"clientCertificate,omitempty"`
	// +optional
	PrivateKey string `json:"privateKey,omitempty"`
	// +optional
	CaCertificates string `json:"caCertificates,omitempty"`
	// +optional
	CredentialName string `json:"credentialName,omitempty"`
	// +optional
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
	// +optional
	Sni string `json:"sni,omitempty"`
	// +optional
	InsecureSkipVerify *bool `json:"insecureSkipVerify,omitempty"`
}

// ParentReference names a parent (usually a Gateway) of the generated HTTPRoute.
type ParentReference struct {
	// Group of the parent (gateway.networking.k8s.io when unset).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Group *string `json:"group,omitempty"`

	// Kind of the parent (Gateway when unset).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`
	// +optional
	Kind *string `json:"kind,omitempty"`

	// Namespace of the parent (the Canary's when unset).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace *string `json:"namespace,omitempty"`

	// Name of the parent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// SectionName is a listener of the parent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SectionName *string `json:"sectionName,omitempty"`

	// Port of the parent.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// HTTPRequestMirrorFilter mirrors requests to another backend.
type HTTPRequestMirrorFilter struct {
	// BackendRef is the backend that receives the copies.
	BackendRef BackendObjectReference `json:"backendRef"`

	// Percent of the requests mirrored.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Percent *int32 `json:"percent,omitempty"`

	// Fraction of the requests mirrored.
	// +optional
	Fraction *Fraction `json:"fraction,omitempty"`
}

// Fraction is numerator/denominator (denominator 100 when unset).
type Fraction struct {
	// +kubebuilder:validation:Minimum=0
	Numerator int32 `json:"numerator"`
	// +kubebuilder:validation:Minimum=1
	// +optional
	Denominator *int32 `json:"denominator,omitempty"`
}

// BackendObjectReference names a backend (a Service when group and kind are unset).
//
// +kubebuilder:validation:XValidation:rule="(has(self.group) && size(self.group) > 0) || (has(self.kind) && self.kind != 'Service') || has(self.port)",message="port is required for a Service backend",fieldPath=".port"
type BackendObjectReference struct {
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Group *string `json:"group,omitempty"`

	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`
	// +optional
	Kind *string `json:"kind,omitempty"`

	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace *string `json:"namespace,omitempty"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}
