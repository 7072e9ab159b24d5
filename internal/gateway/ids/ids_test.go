package ids_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sightline/sightline/internal/gateway/ids"
	"github.com/sightline/sightline/internal/store/sqlite"
)

func TestAllocatorMonotonicAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	var last int64
	for run := 0; run < 3; run++ {
		st, err := sqlite.OpenGateway(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		a := ids.New(st, 7, nil)
		for i := 0; i < 10; i++ {
			v := a.NextMID()
			if v <= last {
				t.Fatalf("run %d: NextMID() = %d after %d, want a larger value", run, v, last)
			}
			last = v
		}
		if got := a.NextICID(); run == 0 && got != 1 {
			t.Errorf("first NextICID() = %d, want 1", got)
		}
		st.Close()
	}
}

func TestAllocatorConcurrentUnique(t *testing.T) {
	st, err := sqlite.OpenGateway(context.Background(), filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := ids.New(st, 16, nil)
	const workers, each = 8, 200
	got := make(chan int64, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				got <- a.NextDCID()
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := make(map[int64]bool)
	for v := range got {
		if seen[v] {
			t.Fatalf("NextDCID() returned %d twice", v)
		}
		seen[v] = true
	}
	for v := int64(1); v <= workers*each; v++ {
		if !seen[v] {
			t.Fatalf("value %d never returned: a single run must hand out a dense range", v)
		}
	}
}
