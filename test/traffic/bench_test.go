package traffic

import (
	"context"
	"fmt"
	"testing"

	"istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fiftyCanaries is a simulator over 50 canaries, each with an A/B route and a weighted one.
func fiftyCanaries(b *testing.B) *Simulator {
	var objs []client.Object
	for i := range 50 {
		app := fmt.Sprintf("app%02d", i)
		objs = append(objs,
			deployment(app+"-primary", 2, nil),
			deployment(app, 1, map[string]string{ErrorRateAnnotation: "0.1", LatencyAnnotation: "50ms-120ms"}),
			service(app+"-primary", app+"-primary"),
			service(app+"-canary", app),
			virtualService(app,
				&v1alpha3.HTTPRoute{
					Match: []*v1alpha3.HTTPMatchRequest{{Headers: map[string]*v1alpha3.StringMatch{"x-canary": exact("insider")}}},
					Route: weighted(app+"-primary", 0, app+"-canary", 100),
				},
				&v1alpha3.HTTPRoute{Route: weighted(app+"-primary", 80, app+"-canary", 20)},
			),
		)
	}
	return newSim(b, objs, Class{Name: "insiders", Share: 1, Headers: map[string]string{"x-canary": "insider"}}, Class{Name: "others", Share: 9})
}

// perTick is what one default tick sends to each VirtualService: 20 rps x 250ms.
var perTick = int(DefaultRPS * DefaultTick.Seconds())

// BenchmarkTick50VirtualServices measures one default tick over 50 canaries: the three API
// lists (here the fake client's, which copies every object through JSON), routing, serving
// and metrics.
func BenchmarkTick50VirtualServices(b *testing.B) {
	s := fiftyCanaries(b)
	ctx := context.Background()
	mustStep(b, s, perTick) // warm the series cache, as a running simulator has
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.step(ctx, perTick); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if total, _ := s.Served(ns, "app00"); total == 0 {
		b.Fatal("no request reached a canary")
	}
}

// BenchmarkGenerate50VirtualServices measures the simulator's own share of a tick, without
// the API reads: routing, serving and recording 5 requests for each of 50 VirtualServices.
func BenchmarkGenerate50VirtualServices(b *testing.B) {
	s := fiftyCanaries(b)
	snap, err := s.read(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	s.generate(snap, perTick)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.generate(snap, perTick)
	}
	b.StopTimer()
	if total, _ := s.Served(ns, "app00"); total == 0 {
		b.Fatal("no request reached a canary")
	}
}
