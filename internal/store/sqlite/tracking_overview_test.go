package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/tracking"
)

func TestTrackingOverview(t *testing.T) {
	s := MustOpenTracking(t)
	base := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	msg := func(mid int64, at time.Duration, sender, status, threat string, filters ...string) *tracking.Message {
		return &tracking.Message{MID: mid, ICID: 1, Direction: "incoming", InjectedAt: base.Add(at), Sender: sender,
			Status: status, ThreatName: threat, ContentFilters: filters}
	}
	mustApply(t, s, tracking.Batch{Messages: []*tracking.Message{
		msg(1, 5*time.Minute, "a@x.test", tracking.StatusDelivered, ""),
		msg(2, 10*time.Minute, "a@x.test", tracking.StatusDroppedAV, "Eicar-Test-Signature"),
		msg(3, 70*time.Minute, "b@y.test", tracking.StatusQuarantinedCF, "", "block_exe"),
		msg(4, 75*time.Minute, "a@x.test", tracking.StatusHardBounced, ""),
		msg(5, 80*time.Minute, "c@z.test", tracking.StatusInProgress, "Eicar-Test-Signature", "block_exe"),
		msg(6, -time.Hour, "old@x.test", tracking.StatusDelivered, ""), // before since
	}})
	got, err := s.Overview(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	want := tracking.Overview{
		Hours: []tracking.HourCount{
			{Start: base, Delivered: 1, Dropped: 1},
			{Start: base.Add(time.Hour), Quarantined: 1, Bounced: 1},
		},
		TopSenders: []tracking.Count{{Name: "a@x.test", Count: 3}, {Name: "b@y.test", Count: 1}, {Name: "c@z.test", Count: 1}},
		TopThreats: []tracking.Count{{Name: "Eicar-Test-Signature", Count: 2}, {Name: "block_exe", Count: 2}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Overview mismatch (-want +got):\n%s", diff)
	}
}
