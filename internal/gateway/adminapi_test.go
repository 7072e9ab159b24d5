package gateway

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/sightline/sightline"
)

func TestAdminErrorStatus(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantMsg    string
	}{
		{sightline.Errorf(sightline.Invalid, "bad list"), 400, "bad list"},
		{sightline.Errorf(sightline.NotFound, "no list"), 404, "no list"},
		{sightline.Errorf(sightline.Conflict, "There is no data to commit."), 409, "There is no data to commit."},
		{sightline.Errorf(sightline.Unauthorized, "Unauthorized."), 401, "Unauthorized."},
		{sightline.Errorf(sightline.Forbidden, "role Guest cannot change the configuration"), 403, "role Guest cannot change the configuration"},
		{sightline.Errorf(sightline.Unavailable, "exchange down"), 503, "exchange down"},
		{errors.New("disk on fire"), 500, "Internal Server Error."},
	}
	g := &Gateway{logger: slog.New(slog.DiscardHandler)}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		g.adminError(w, tt.err)
		var body struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tt.wantStatus || body.Error.Message != tt.wantMsg {
			t.Errorf("adminError(%v) = %d %q, want %d %q", tt.err, w.Code, body.Error.Message, tt.wantStatus, tt.wantMsg)
		}
	}
	if len(adminStatus) != 7 {
		t.Errorf("adminStatus maps %d kinds, want all 7", len(adminStatus))
	}
}
