package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/console/records/recordstest"
)

func TestConsoleStore(t *testing.T) {
	recordstest.TestStore(t, func(t *testing.T) records.Store {
		s, err := OpenConsole(context.Background(), filepath.Join(t.TempDir(), "console.db"))
		if err != nil {
			t.Fatalf("OpenConsole: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
