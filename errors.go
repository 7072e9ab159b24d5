// Package sightline holds what every role shares: the error type with its kinds.
//
// Each edge of the system (HTTP, SMTP, the AsyncOS and CTR error bodies) maps an
// error's Kind to its own protocol in one table; the Message is safe to show to a
// user, while the wrapped cause stays in logs.
package sightline

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edges that must answer it.
type Kind string

// The kinds of error. The zero Kind is treated as Internal.
const (
	Invalid      Kind = "invalid"      // the input is malformed or breaks a rule
	NotFound     Kind = "not_found"    // the thing asked for does not exist
	Conflict     Kind = "conflict"     // the request clashes with the current state
	Unauthorized Kind = "unauthorized" // no identity, or a bad one
	Forbidden    Kind = "forbidden"    // a known identity without the right
	Unavailable  Kind = "unavailable"  // a dependency is down or busy; retry later
	Internal     Kind = "internal"     // a bug or an unexpected failure
)

// Error is the one error type of Sightline. Message is safe to show to the
// caller; Err, when set, is the private cause for logs.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

// Errorf returns an *Error of kind k with a formatted user-safe message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of kind k that shows msg and keeps err as its cause.
func Wrap(k Kind, err error, msg string) *Error {
	return &Error{Kind: k, Message: msg, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorKind returns the Kind of the first *Error in err's chain, Internal when
// there is none, and "" for a nil error.
func ErrorKind(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Kind != "" {
		return e.Kind
	}
	return Internal
}

// ErrorMessage returns the user-safe message of err: the Message of the first
// *Error in its chain, or a generic text for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}
