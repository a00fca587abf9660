package sidecar

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/grpc/codes"
)

// Stage names where on the request path a request failed.
type Stage string

// Stages of the request path.
const (
	StageListener Stage = "listener" // malformed or abusive request
	StageService  Stage = "service"  // unknown destination
	StageDecide   Stage = "decide"   // no region allowed or healthy
	StageForward  Stage = "forward"  // every attempt failed
)

// Error is a request that Geode itself answers with an error. One place (write) turns it
// into an HTTP response, or a gRPC status for gRPC calls.
type Error struct {
	Stage  Stage
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("geode: %s: %s", e.Stage, e.Msg) }

func errorf(stage Stage, status int, format string, args ...any) *Error {
	return &Error{Stage: stage, Status: status, Msg: fmt.Sprintf(format, args...)}
}

// grpcCode maps an HTTP status of ours to the gRPC code a gRPC client should see.
func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusBadRequest:
		return codes.InvalidArgument
	default:
		return codes.Internal
	}
}

// write sends e to the client: a trailers-only gRPC response for gRPC calls, else a
// plain-text HTTP response whose body says what went wrong.
func (e *Error) write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if isGRPC(r) {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(int(grpcCode(e.Status))))
		h.Set("Grpc-Message", url.PathEscape(e.Error()))
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	fmt.Fprintln(w, e.Error())
}
