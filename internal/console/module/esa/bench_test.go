package esa

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/sightline/sightline/internal/ctim"
)

// BenchmarkObserveRecords measures the module's own share of an
// investigation on a Sightline gateway: decoding a records answer of 50
// messages, building their sightings and encoding them. The answer is what
// bench/console's gateway gives for its email_subject observable.
func BenchmarkObserveRecords(b *testing.B) {
	body, err := os.ReadFile("testdata/records-invoice-due.json")
	if err != nil {
		b.Fatal(err)
	}
	gw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	m := newTestModule(b, handlerProxy{gw}, `{"device_id": "d1", "timeframe_days": 30}`, Options{})
	obs := []ctim.Observable{{Type: "email_subject", Value: "Invoice Due"}}
	b.ReportAllocs()
	for b.Loop() {
		data, errs, err := m.Observe(context.Background(), obs)
		if err != nil || len(errs) > 0 || len(data["sightings"]) == 0 {
			b.Fatalf("Observe = %v, %v", errs, err)
		}
	}
}
