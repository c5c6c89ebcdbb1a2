package async

import (
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Record is a call as the API shows it (GET /system/async/{id}).
type Record struct {
	CallID          string          `json:"callId"`
	Function        string          `json:"function"`
	Namespace       string          `json:"namespace"`
	Method          string          `json:"method"`
	Path            string          `json:"path"`
	Query           string          `json:"query"`
	State           string          `json:"state"`
	Attempts        int             `json:"attempts"`
	MaxAttempts     int             `json:"maxAttempts"`
	NextAttemptAt   *time.Time      `json:"nextAttemptAt,omitempty"`
	LastStatus      int             `json:"lastStatus"`
	LastError       string          `json:"lastError"`
	AcceptedAt      time.Time       `json:"acceptedAt"`
	StartedAt       *time.Time      `json:"startedAt,omitempty"`
	FinishedAt      *time.Time      `json:"finishedAt,omitempty"`
	DurationSeconds float64         `json:"durationSeconds"`
	CallbackURL     string          `json:"callbackUrl,omitempty"`
	Callback        *CallbackRecord `json:"callback,omitempty"`
}

// CallbackRecord is where a call's callback delivery stands.
type CallbackRecord struct {
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastStatus    int        `json:"lastStatus"`
	LastError     string     `json:"lastError"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// recordOf turns a stored call into its Record; running says whether an
// attempt is under way now (the store does not keep that: it would cost a
// write per attempt and mean nothing after a restart).
func recordOf(c store.Call, running bool) Record {
	ns, name, _ := faas.SplitKey(c.Function)
	r := Record{
		CallID: c.ID, Function: name, Namespace: ns,
		Method: c.Method, Path: c.Path, Query: c.Query,
		State: c.State, Attempts: c.Attempts, MaxAttempts: c.MaxAttempts,
		LastStatus: c.LastCode, LastError: c.LastError,
		AcceptedAt: c.AcceptedAt, StartedAt: timePtr(c.StartedAt), FinishedAt: timePtr(c.FinishedAt),
		DurationSeconds: c.DurationSeconds,
		CallbackURL:     c.CallbackURL,
	}
	if c.State == store.CallRetrying {
		r.NextAttemptAt = timePtr(c.NextAttemptAt)
	}
	if running && c.Pending() {
		r.State = store.CallRunning
		r.NextAttemptAt = nil
	}
	if c.Callback != "" {
		r.Callback = &CallbackRecord{
			State: c.Callback, Attempts: c.CallbackAttempts,
			LastStatus: c.CallbackCode, LastError: c.CallbackError,
		}
		if c.Callback == store.CallbackPending {
			r.Callback.NextAttemptAt = timePtr(c.CallbackNextAt)
		}
	}
	return r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Filter selects records for List.
type Filter struct {
	// Function is a store key "namespace/name"; "" is every function.
	Function string
	// Namespace limits to one namespace when Function is "".
	Namespace string
	// State is one of the call states; "" is any.
	State string
	// Limit is the most records returned, newest first; 0 means 100.
	Limit int
}

// States are the values Filter.State and Record.State take.
var States = []string{store.CallQueued, store.CallRunning, store.CallRetrying, store.CallSucceeded, store.CallFailed, store.CallCancelled}
