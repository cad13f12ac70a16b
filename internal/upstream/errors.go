package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Kind classifies why a round trip to an upstream failed, so the gateway can
// choose the status code it answers with without inspecting error strings.
type Kind uint8

const (
	// KindUnknown is returned by KindOf for errors that did not come from a Pool.
	KindUnknown Kind = iota
	// KindConnect: the TCP connection to the target could not be established
	// (refused, unreachable). Nothing was sent. Gateway: 502.
	KindConnect
	// KindTLS: the TLS handshake with an https target failed (certificate not
	// trusted, wrong name, alert from the peer). Gateway: 502.
	KindTLS
	// KindTimeout: the connect timeout, the response-header timeout, the overall
	// timeout, or a deadline of the caller's context expired. Gateway: 504.
	KindTimeout
	// KindProtocol: the connection broke or the target sent something that is
	// not a valid HTTP response. Gateway: 502.
	KindProtocol
	// KindNoHealthy: every target is ejected or marked down, so the request was
	// not sent anywhere (fail closed). errors.Is(err, ErrNoHealthyTarget) holds.
	// Gateway: 503.
	KindNoHealthy
	// KindCanceled: the caller's context was canceled (the client went away).
	// It is not counted against the target's health nor in the error metric.
	KindCanceled

	numKinds
)

// String returns the lower-case name used in logs and as the "kind" metric label.
func (k Kind) String() string {
	switch k {
	case KindConnect:
		return "connect"
	case KindTLS:
		return "tls"
	case KindTimeout:
		return "timeout"
	case KindProtocol:
		return "protocol"
	case KindNoHealthy:
		return "no_healthy_target"
	case KindCanceled:
		return "canceled"
	default:
		return "unknown"
	}
}

// ErrNoHealthyTarget is wrapped by the *Error returned when no target of the
// upstream may receive traffic. The gateway answers 503.
var ErrNoHealthyTarget = errors.New("no healthy target")

// errOverallTimeout is the cancellation cause set when OverallTimeout fires.
var errOverallTimeout = errors.New("overall timeout exceeded")

// Error is the error type returned by Pool.RoundTrip and by reads of a
// response body that was cut by the overall timeout.
//
// Its text names the upstream and the target URL (scheme, host, port and base
// path; target URLs never carry credentials, New rejects them). It is meant
// for logs, not for clients: the gateway answers with a generic problem
// document chosen by Kind.
type Error struct {
	Kind     Kind
	Upstream string // upstream name from Options.Name
	Target   string // target URL of the last attempt; empty for KindNoHealthy
	Attempts int    // number of attempts made (0 for KindNoHealthy before any attempt)
	Err      error  // underlying cause
}

// Error implements error.
func (e *Error) Error() string {
	s := "upstream " + quote(e.Upstream)
	if e.Target != "" {
		s += " target " + e.Target
	}
	s += ": " + e.Kind.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a timeout (net.Error compatible).
func (e *Error) Timeout() bool { return e.Kind == KindTimeout }

// Temporary is part of the legacy net.Error interface; always false.
func (e *Error) Temporary() bool { return false }

// KindOf returns the Kind of the first *Error in err's chain, or KindUnknown.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}

// quote is a tiny strconv.Quote replacement for names that New already
// restricted to a safe character set.
func quote(s string) string { return `"` + s + `"` }

// classify maps a transport error to a Kind and says whether the failure
// happened before the target could have produced any response byte, which
// makes a retry of an idempotent, replayable request safe.
//
// ctx is the attempt's context: if it is done, the cause decides (our overall
// timer, the caller's deadline, or the caller's cancellation).
func classify(ctx context.Context, err error) (kind Kind, retryable bool) {
	if cause := context.Cause(ctx); cause != nil {
		if cause == errOverallTimeout || errors.Is(cause, context.DeadlineExceeded) {
			return KindTimeout, false
		}
		return KindCanceled, false
	}
	var op *net.OpError
	if errors.As(err, &op) {
		switch op.Op {
		case "dial":
			if op.Timeout() {
				return KindTimeout, true
			}
			return KindConnect, true
		case "remote error": // TLS alert from the peer (e.g. client certificate rejected)
			return KindTLS, true
		}
	}
	if isTLSHandshakeError(err) {
		return KindTLS, true
	}
	if strings.Contains(err.Error(), "client conn could not be established") {
		// HTTP/2 connection setup failed before any request was sent (for
		// example a TLS 1.3 peer rejecting our certificate right after the
		// handshake); net/http does not wrap the cause, hence the text match.
		return KindConnect, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Response-header timeout (or TLS handshake timeout): the target may be
		// working on the request; retrying would multiply load on a slow
		// target, so we do not.
		return KindTimeout, false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The connection broke before a response header arrived (RoundTrip only
		// returns an error when no response was received).
		return KindProtocol, true
	}
	return KindProtocol, false
}

func isTLSHandshakeError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) ||
		errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}
