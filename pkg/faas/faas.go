// Package faas is the vocabulary every other package shares: how a function
// is named (its key and default namespace), how long a call to it may take,
// where it is reached and how a reconcile of it ended. It imports nothing of
// the project, so the API, the store, the proxy, the controller and the
// runtimes can all use it without importing each other.
package faas

import "fmt"

// DefaultNamespace is the namespace functions land in when none is given.
// faas-cli always appends it on invoke, so it must be called exactly this.
const DefaultNamespace = "openfaas-fn"

// Key builds a function's key, "namespace/name".
func Key(namespace, name string) string { return namespace + "/" + name }

// SplitKey is the inverse of Key.
func SplitKey(key string) (namespace, name string, err error) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			if i == 0 || i == len(key)-1 {
				break
			}
			return key[:i], key[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("malformed key %q", key)
}

// Endpoint is one ready replica of a function, as the proxy routes to it.
type Endpoint struct {
	// Replica identifies the replica (a container or task ID); load signals
	// and logs are keyed by it.
	Replica string
	// Addr is host:port reachable from the daemon, e.g. "172.18.0.2:8080".
	Addr string
	// Job marks the one pseudo endpoint of a job-mode function (no Addr):
	// the proxy hands its calls to the job executor, which runs a fresh
	// container per call, instead of forwarding them.
	Job bool
	// Isolated marks the one pseudo endpoint of a function with
	// per-request isolation (no Addr): the proxy takes a fresh container
	// from the function's pool for each call.
	Isolated bool
}

// JobEndpoints is what a runtime publishes for a job-mode function that
// is ready to run calls: one pseudo endpoint.
func JobEndpoints(key string) []Endpoint {
	return []Endpoint{{Replica: "job:" + key, Job: true}}
}

// IsJobRoute reports whether eps is a job function's pseudo endpoint.
func IsJobRoute(eps []Endpoint) bool { return len(eps) == 1 && eps[0].Job }

// IsolatedEndpoints is what a runtime publishes for a function with
// per-request isolation that has a pool: one pseudo endpoint.
func IsolatedEndpoints(key string) []Endpoint {
	return []Endpoint{{Replica: "pool:" + key, Isolated: true}}
}

// IsIsolatedRoute reports whether eps is an isolated function's pseudo
// endpoint.
func IsIsolatedRoute(eps []Endpoint) bool { return len(eps) == 1 && eps[0].Isolated }

// Outcome is how the last reconcile of a function ended.
type Outcome string

// The outcomes, as /debug/reconcile shows them.
const (
	// Converged: the runtime runs exactly what is desired, all ready.
	Converged Outcome = "converged"
	// Progressing: work is under way (replicas starting, draining, a
	// crash backoff); the key is looked at again soon.
	Progressing Outcome = "progressing"
	// Failed: an error that is retried with backoff.
	Failed Outcome = "error"
	// Terminal: an error retrying cannot fix (an invalid spec).
	Terminal Outcome = "terminal"
)
