package sightline_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sightline/sightline"
)

func TestErrorKindAndMessage(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantKind sightline.Kind
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		{"plain", io.EOF, sightline.Internal, "internal error"},
		{"typed", sightline.Errorf(sightline.NotFound, "no message %d", 7), sightline.NotFound, "no message 7"},
		{"wrapped", fmt.Errorf("lookup: %w", sightline.Errorf(sightline.Invalid, "bad mid")), sightline.Invalid, "bad mid"},
		{"cause kept", sightline.Wrap(sightline.Unavailable, io.ErrUnexpectedEOF, "dns down"), sightline.Unavailable, "dns down"},
		{"empty kind", &sightline.Error{Message: "x"}, sightline.Internal, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sightline.ErrorKind(tt.err); got != tt.wantKind {
				t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.wantKind)
			}
			if got := sightline.ErrorMessage(tt.err); got != tt.wantMsg {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.wantMsg)
			}
		})
	}
	w := sightline.Wrap(sightline.Unavailable, io.ErrUnexpectedEOF, "dns down")
	if !errors.Is(w, io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = false, want true", w)
	}
}
