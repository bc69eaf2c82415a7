//go:build probe

package internal

import (
	_ "github.com/go-logr/zapr"
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "github.com/open-policy-agent/cert-controller/pkg/rotator"
	_ "github.com/prometheus/client_golang/api"
	_ "istio.io/client-go/pkg/apis/networking/v1"
	_ "k8s.io/api/apps/v1"
	_ "sigs.k8s.io/controller-runtime"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
)
