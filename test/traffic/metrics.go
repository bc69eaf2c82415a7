package traffic

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const unknown = "unknown"

// The labels of Istio's standard HTTP metrics, in the order the simulator fills them
// (https://istio.io/latest/docs/reference/config/metrics/). Queries written for a real mesh,
// Flagger's builtin ones included, select on these names.
const (
	lReporter = iota
	lSourceWorkload
	lSourceWorkloadNamespace
	lSourcePrincipal
	lSourceApp
	lSourceVersion
	lSourceCanonicalService
	lSourceCanonicalRevision
	lSourceCluster
	lDestinationWorkload
	lDestinationWorkloadNamespace
	lDestinationPrincipal
	lDestinationApp
	lDestinationVersion
	lDestinationService
	lDestinationServiceName
	lDestinationServiceNamespace
	lDestinationCanonicalService
	lDestinationCanonicalRevision
	lDestinationCluster
	lRequestProtocol
	lResponseCode
	lGRPCResponseStatus
	lResponseFlags
	lConnectionSecurityPolicy
	nLabels
)

// IstioLabels are the label names of istio_requests_total and the duration histograms.
var IstioLabels = []string{
	lReporter:                     "reporter",
	lSourceWorkload:               "source_workload",
	lSourceWorkloadNamespace:      "source_workload_namespace",
	lSourcePrincipal:              "source_principal",
	lSourceApp:                    "source_app",
	lSourceVersion:                "source_version",
	lSourceCanonicalService:       "source_canonical_service",
	lSourceCanonicalRevision:      "source_canonical_revision",
	lSourceCluster:                "source_cluster",
	lDestinationWorkload:          "destination_workload",
	lDestinationWorkloadNamespace: "destination_workload_namespace",
	lDestinationPrincipal:         "destination_principal",
	lDestinationApp:               "destination_app",
	lDestinationVersion:           "destination_version",
	lDestinationService:           "destination_service",
	lDestinationServiceName:       "destination_service_name",
	lDestinationServiceNamespace:  "destination_service_namespace",
	lDestinationCanonicalService:  "destination_canonical_service",
	lDestinationCanonicalRevision: "destination_canonical_revision",
	lDestinationCluster:           "destination_cluster",
	lRequestProtocol:              "request_protocol",
	lResponseCode:                 "response_code",
	lGRPCResponseStatus:           "grpc_response_status",
	lResponseFlags:                "response_flags",
	lConnectionSecurityPolicy:     "connection_security_policy",
}

// Metric names.
const (
	RequestsTotal            = "istio_requests_total"
	RequestDurationMillis    = "istio_request_duration_milliseconds"
	RequestDurationSeconds   = "istio_request_duration_seconds"
	SimulatorRequestsTotal   = "traffic_simulator_requests_total"
	clusterName              = "Kubernetes"
	reporterDestination      = "destination"
	reporterSource           = "source"
	flagNone                 = "-"
	flagNoHealthyUpstream    = "UH"
	flagNoRouteFound         = "NR"
	flagNoClusterFound       = "NC"
	securityMutualTLS        = "mutual_tls"
	securityUnknown          = unknown
	protocolHTTP             = "http"
	simulatorLabelVS         = "virtual_service"
	simulatorLabelNamespace  = "namespace"
	simulatorLabelClass      = "class"
	simulatorLabelDestWorkld = "destination_workload"
)

// Envoy's default histogram buckets, which Istio keeps for its millisecond histogram.
var millisecondBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// The buckets of the seconds histogram that Istio's Mixer exported before 1.5.
var secondBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type labelSet [nLabels]string

// series are the children of the three Istio vectors for one label set, looked up once:
// resolving 25 label values on every request is most of a tick's cost otherwise.
type series struct {
	requests prometheus.Counter
	millis   prometheus.Observer
	seconds  prometheus.Observer
}

type metrics struct {
	// appDuration and grpcHandled are what the applications themselves export.
	appDuration *prometheus.HistogramVec
	grpcHandled *prometheus.CounterVec
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	millis      *prometheus.HistogramVec
	seconds     *prometheus.HistogramVec
	simulated   *prometheus.CounterVec
	cache       map[labelSet]*series
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal,
			Help: "Requests handled by a simulated Istio proxy.",
		}, IstioLabels),
		millis: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    RequestDurationMillis,
			Help:    "Duration of requests handled by a simulated Istio proxy, in milliseconds.",
			Buckets: millisecondBuckets,
		}, IstioLabels),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    RequestDurationSeconds,
			Help:    "Duration of requests handled by a simulated Istio proxy, in seconds (the name of Istio before 1.5).",
			Buckets: secondBuckets,
		}, IstioLabels),
		simulated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SimulatorRequestsTotal,
			Help: "Requests the simulator sent, by request class and by the workload the routes chose (mirrored copies not included).",
		}, []string{simulatorLabelVS, simulatorLabelNamespace, simulatorLabelClass, simulatorLabelDestWorkld}),
		appDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    AppRequestDuration,
			Help:    "Duration of HTTP requests as the simulated application measures them, in seconds.",
			Buckets: prometheus.DefBuckets,
		}, []string{"kubernetes_namespace", "kubernetes_pod_name", "method", "status"}),
		grpcHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: AppGRPCHandled,
			Help: "gRPC calls the simulated application completed, by status code.",
		}, []string{"kubernetes_namespace", "kubernetes_pod_name", "grpc_service", "grpc_method", "grpc_code"}),
		cache: map[labelSet]*series{},
	}
	m.registry.MustRegister(m.requests, m.millis, m.seconds, m.simulated, m.appDuration, m.grpcHandled)
	return m
}

func (m *metrics) observe(ls *labelSet, latency time.Duration) {
	s, ok := m.cache[*ls]
	if !ok {
		vals := ls[:]
		s = &series{
			requests: m.requests.WithLabelValues(vals...),
			millis:   m.millis.WithLabelValues(vals...),
			seconds:  m.seconds.WithLabelValues(vals...),
		}
		m.cache[*ls] = s
	}
	s.requests.Inc()
	s.millis.Observe(float64(latency) / float64(time.Millisecond))
	s.seconds.Observe(latency.Seconds())
}

// exchange is one request as the proxies report it.
type exchange struct {
	sourceNamespace string
	// sourceWorkload is the reporting client (a gateway); the simulator's own name when empty.
	sourceWorkload string
	// grpc marks a gRPC call: HTTP status 200, the outcome in grpc_response_status.
	grpc     bool
	backend  *backend  // nil when no route matched
	workload *workload // nil when no workload answered
	code     int
	flags    string
	latency  time.Duration
}

// labels fills the label values of one report of the exchange.
func (x *exchange) labels(reporter string) labelSet {
	var ls labelSet
	src := sourceWorkload
	if x.sourceWorkload != "" {
		src = x.sourceWorkload
	}
	ls[lReporter] = reporter
	ls[lSourceWorkload] = src
	ls[lSourceWorkloadNamespace] = x.sourceNamespace
	ls[lSourcePrincipal] = "spiffe://cluster.local/ns/" + x.sourceNamespace + "/sa/default"
	ls[lSourceApp] = src
	ls[lSourceVersion] = unknown
	ls[lSourceCanonicalService] = src
	ls[lSourceCanonicalRevision] = "latest"
	ls[lSourceCluster] = clusterName
	ls[lDestinationWorkload] = unknown
	ls[lDestinationWorkloadNamespace] = unknown
	ls[lDestinationPrincipal] = unknown
	ls[lDestinationApp] = unknown
	ls[lDestinationVersion] = unknown
	ls[lDestinationService] = unknown
	ls[lDestinationServiceName] = unknown
	ls[lDestinationServiceNamespace] = unknown
	ls[lDestinationCanonicalService] = unknown
	ls[lDestinationCanonicalRevision] = unknown
	ls[lDestinationCluster] = unknown
	if b := x.backend; b != nil {
		ls[lDestinationService] = b.fqdn
		ls[lDestinationServiceName] = b.name
		ls[lDestinationServiceNamespace] = b.namespace
	}
	if w := x.workload; w != nil {
		ls[lDestinationWorkload] = w.name
		ls[lDestinationWorkloadNamespace] = w.namespace
		ls[lDestinationPrincipal] = w.principal
		ls[lDestinationApp] = w.app
		ls[lDestinationVersion] = w.version
		ls[lDestinationCanonicalService] = w.canonicalService
		ls[lDestinationCanonicalRevision] = w.canonicalRevision
		ls[lDestinationCluster] = clusterName
	}
	ls[lRequestProtocol] = protocolHTTP
	ls[lResponseCode] = strconv.Itoa(x.code)
	ls[lGRPCResponseStatus] = ""
	if x.grpc {
		// gRPC reports failures in its own status (13, INTERNAL) over an HTTP 200; a
		// response the gateway itself gives (no route, no backend) stays an HTTP error.
		ls[lRequestProtocol] = "grpc"
		if x.workload != nil {
			ls[lGRPCResponseStatus] = "0"
			if x.code >= 500 {
				ls[lGRPCResponseStatus] = "13"
			}
			ls[lResponseCode] = "200"
		}
	}
	ls[lResponseFlags] = x.flags
	// The client side never knows the policy of the connection; the server side sees mTLS.
	ls[lConnectionSecurityPolicy] = securityUnknown
	if reporter == reporterDestination {
		ls[lConnectionSecurityPolicy] = securityMutualTLS
	}
	return ls
}
