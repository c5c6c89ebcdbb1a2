package fake

import (
	"fmt"
	"sync"
)

// recorder is what the fakes (Engine, Swarm) share: their lock, the record
// of the mutating calls, and the failure hook. Each fake embeds one; its
// methods call record and fail with mu held.
type recorder struct {
	// mu guards the whole fake that embeds the recorder.
	mu      sync.Mutex
	actions []string
	// Fail, when set, is consulted before every call; a non-nil error is
	// returned instead of doing the call (op is e.g. "create", "start",
	// "create-service").
	Fail func(op, arg string) error
}

// SetFail sets Fail while the fake is in use.
func (r *recorder) SetFail(f func(op, arg string) error) {
	r.mu.Lock()
	r.Fail = f
	r.mu.Unlock()
}

func (r *recorder) record(format string, args ...any) {
	r.actions = append(r.actions, fmt.Sprintf(format, args...))
}

func (r *recorder) fail(op, arg string) error {
	if r.Fail == nil {
		return nil
	}
	return r.Fail(op, arg)
}

// Actions returns the recorded mutating calls, e.g. "create fn-1", "start
// <id>", "create-service NAME".
func (r *recorder) Actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.actions...)
}

// ResetActions forgets the recorded calls.
func (r *recorder) ResetActions() {
	r.mu.Lock()
	r.actions = nil
	r.mu.Unlock()
}
