package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/exchange/exchangetest"
	"github.com/sightline/sightline/internal/exchange/registry"
)

func TestExchangeStore(t *testing.T) {
	exchangetest.TestStore(t, func(t *testing.T) registry.Store {
		s, err := OpenExchange(context.Background(), filepath.Join(t.TempDir(), "exchange.db"))
		if err != nil {
			t.Fatalf("OpenExchange: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
