package portrait

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to a status; anything else is
// EINTERNAL, logged in full and shown to callers only as a short message.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a declaration
	ENOTFOUND     = "not_found"    // no such thing
	ECONFLICT     = "conflict"     // the thing exists or changed meanwhile
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // the role may not do this
	EDENIED       = "denied"       // a legal rule refused it (policy)
	ETOOLARGE     = "too_large"    // the body is over the limit
	EUNAVAILABLE  = "unavailable"  // a dependency (the audit log) is down: fail closed
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is Portrait's application error. Message is safe to show to the
// caller; Err, if set, is the underlying cause and is only logged.
type Error struct {
	Code        string
	Message     string
	Requirement string // the requirement id that refused, e.g. "CN-4"
	Err         error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EINTERNAL; nil has no code.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
