package main

import "testing"

func TestSameWithoutTransientIDs(t *testing.T) {
	const a = `{"id":"transient:sighting-1","rel":{"id":"transient:rel-9"},"n":1}`
	want := withoutTransientIDs([]byte(a))
	if string(want) != `{"id":"transient:","rel":{"id":"transient:"},"n":1}` {
		t.Fatalf("withoutTransientIDs = %s", want)
	}
	for b, same := range map[string]bool{
		a: true,
		`{"id":"transient:sighting-22","rel":{"id":"transient:x"},"n":1}`:     true,
		`{"id":"transient:sighting-1","rel":{"id":"transient:rel-9"},"n":2}`:  false,
		`{"id":"transient:sighting-1","rel":{"id":"other"},"n":1}`:            false,
		`{"id":"transient:sighting-1","n":1}`:                                 false,
		`{"id":"transient:sighting-1","rel":{"id":"transient:rel-9"},"n":1}x`: false,
		``: false,
	} {
		if got := sameWithoutTransientIDs([]byte(b), want); got != same {
			t.Errorf("sameWithoutTransientIDs(%s) = %v, want %v", b, got, same)
		}
	}
}
