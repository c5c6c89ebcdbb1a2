package faas

import (
	"fmt"
	"strconv"
)

// Per-request isolation (DESIGN.md §12): every call runs in a container
// that has served no other call and is removed right after it; a pool of
// started containers per function keeps the call from waiting for Docker.
const (
	// AnnotationIsolation selects it with IsolationPerRequest; absent (or
	// IsolationShared) a function's replicas serve calls as usual.
	AnnotationIsolation = "io.dockerfaas.isolation"
	IsolationPerRequest = "per-request"
	IsolationShared     = "shared"

	// AnnotationProtocol is how an isolated container gets its call:
	// ProtocolHTTP (the default: any watchdog image, port 8080) or
	// ProtocolSocket (no network; the connection is handed over a Unix
	// socket at /control.sock, see docs/handoff.md).
	AnnotationProtocol = "io.dockerfaas.protocol"
	ProtocolHTTP       = "http"
	ProtocolSocket     = "socket"

	// AnnotationPoolSize is how many started containers an isolated
	// function keeps ready (1 to MaxPoolSize); absent, the daemon's
	// POOL_SIZE.
	AnnotationPoolSize = "io.dockerfaas.pool.size"
)

// MaxPoolSize bounds the pool annotation: every one is an idle container.
const MaxPoolSize = 64

// Isolation is how a function's calls are isolated from each other.
type Isolation struct {
	// PerRequest: a fresh container per call.
	PerRequest bool
	// Protocol is ProtocolHTTP or ProtocolSocket (PerRequest only).
	Protocol string
	// PoolSize is the pool annotation, 0 when absent.
	PoolSize int
}

// IsolationOf reads the isolation annotations; an invalid value is an
// error naming its annotation. The protocol and pool size apply to
// per-request isolation only, and job mode has its own containers: asking
// for them otherwise is an error too, so a typo does not go unnoticed.
func IsolationOf(annotations map[string]string) (Isolation, error) {
	var iso Isolation
	switch v := annotations[AnnotationIsolation]; v {
	case "", IsolationShared:
	case IsolationPerRequest:
		iso.PerRequest = true
	default:
		return Isolation{}, fmt.Errorf("annotations: %s %q: want %s or %s", AnnotationIsolation, v, IsolationPerRequest, IsolationShared)
	}
	proto, hasProto := annotations[AnnotationProtocol]
	switch proto {
	case "":
		iso.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolSocket:
		iso.Protocol = proto
	default:
		return Isolation{}, fmt.Errorf("annotations: %s %q: want %s or %s", AnnotationProtocol, proto, ProtocolHTTP, ProtocolSocket)
	}
	size, hasSize := annotations[AnnotationPoolSize]
	if hasSize {
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 || n > MaxPoolSize {
			return Isolation{}, fmt.Errorf("annotations: %s %q: want an integer from 1 to %d", AnnotationPoolSize, size, MaxPoolSize)
		}
		iso.PoolSize = n
	}
	if !iso.PerRequest && (hasProto && proto != ProtocolHTTP || hasSize) {
		return Isolation{}, fmt.Errorf("annotations: %s and %s apply only with %s: %s", AnnotationProtocol, AnnotationPoolSize, AnnotationIsolation, IsolationPerRequest)
	}
	if iso.PerRequest && IsJob(annotations) {
		return Isolation{}, fmt.Errorf("annotations: %s: %s does not combine with %s: %s (a job already runs in a container of its own)", AnnotationIsolation, IsolationPerRequest, AnnotationMode, ModeJob)
	}
	return iso, nil
}

// IsPerRequest reports whether annotations ask for per-request isolation
// (valid ones only: the API refuses invalid ones before they are stored).
func IsPerRequest(annotations map[string]string) bool {
	iso, err := IsolationOf(annotations)
	return err == nil && iso.PerRequest
}
