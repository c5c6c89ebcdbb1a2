// Package scaling reads a function's scaling policy from its OpenFaaS
// labels (com.openfaas.scale.*), with the meaning OpenFaaS gives them, so
// the API can refuse a bad label before anything is stored and the
// autoscaler, the idler and scale-from-zero all read one policy.
package scaling

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The labels, as OpenFaaS names them.
const (
	LabelMin              = "com.openfaas.scale.min"
	LabelMax              = "com.openfaas.scale.max"
	LabelFactor           = "com.openfaas.scale.factor"
	LabelZero             = "com.openfaas.scale.zero"
	LabelZeroDuration     = "com.openfaas.scale.zero-duration"
	LabelType             = "com.openfaas.scale.type"
	LabelTarget           = "com.openfaas.scale.target"
	LabelTargetProportion = "com.openfaas.scale.target-proportion"
	LabelDownWindow       = "com.openfaas.scale.down.window"
)

// Type is what load a function is scaled by.
type Type string

// Scaling types. Legacy is OpenFaaS CE's: with neither a type nor a target
// label, a function scales the way CE's Prometheus alert drives it (a step
// of factor % of max while above LegacyRPS requests per second, back to min
// when it stops), so stacks written for CE behave the same here.
const (
	RPS      Type = "rps"      // requests per second, over a window
	Capacity Type = "capacity" // requests in flight, over a window
	CPU      Type = "cpu"      // millicores, from the runtime's usage
	Queue    Type = "queue"    // async calls waiting (once async exists)
	Legacy   Type = "legacy"   // no type nor target label: CE's alert rule
)

// Defaults are the values a missing label takes.
type Defaults struct {
	// Max is the max replicas of a function without a max label; Limit
	// bounds every max (the daemon's MAX_REPLICAS).
	Max, Limit uint64
	// ZeroDuration is the idle time before a function with scale.zero
	// goes to zero.
	ZeroDuration time.Duration
	// DownWindow is the scale-down stabilisation of a function without a
	// down.window label.
	DownWindow time.Duration
}

// DefaultDefaults are OpenFaaS's own defaults (Pro's max of 20, 15 minutes
// idle) with a 30 s scale-down window and a limit of 100.
var DefaultDefaults = Defaults{Max: 20, Limit: 100, ZeroDuration: 15 * time.Minute, DownWindow: 30 * time.Second}

// Policy is a function's scaling policy.
type Policy struct {
	// Min and Max bound the replicas; Min is also the initial count and
	// what a call to a function at zero wakes it to (at least 1).
	Min, Max uint64
	// Factor is CE's step in % of Max per alert (10 when absent); 0 turns
	// autoscaling off.
	Factor uint64
	// Zero opts in to scale to zero after ZeroDuration without calls.
	Zero         bool
	ZeroDuration time.Duration
	Type         Type
	// Target is the load one replica should carry, times TargetProportion.
	Target           float64
	TargetProportion float64
	// DownWindow is how long the load must have wanted fewer replicas
	// before they are removed.
	DownWindow time.Duration
	// Asked is true when the labels ask for autoscaling by load: a max
	// label, a type or a target. A function without any keeps the
	// replicas it was given, as on faasd, rather than being moved by a
	// rule its author never chose.
	Asked bool
}

// Static reports whether the autoscaler leaves the function's replicas to
// the API: no label asked for autoscaling, min = max, or factor 0.
func (p Policy) Static() bool { return !p.Asked || p.Min == p.Max || p.Factor == 0 }

// Idles reports whether the function goes to zero after ZeroDuration
// without calls: it opted in with the zero label and is not pinned by
// min = max or factor 0.
func (p Policy) Idles() bool { return p.Zero && p.Min != p.Max && p.Factor != 0 }

// WakeTo is how many replicas a function at zero is woken to.
func (p Policy) WakeTo() uint64 { return max(p.Min, 1) }

// Clamp moves n into [Min, Max]; 0 stays 0 (scale to zero is allowed below
// Min, it means "none until called").
func (p Policy) Clamp(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return max(p.Min, min(n, p.Max))
}

// ErrLabel is wrapped by every error of Parse; the message names the label.
var ErrLabel = errors.New("invalid scaling label")

// Parse reads the policy from labels (nil = none).
func Parse(labels map[string]string, d Defaults) (Policy, error) {
	p := Policy{Min: 1, Max: min(d.Max, d.Limit), Factor: 10, ZeroDuration: d.ZeroDuration,
		Type: Legacy, Target: 50, TargetProportion: 0.90, DownWindow: d.DownWindow}
	if p.Max == 0 {
		p.Max = d.Limit
	}
	bad := func(label, v, want string) error {
		return fmt.Errorf("%w: label %s must be %s, got %q", ErrLabel, label, want, short(v))
	}
	uintLabel := func(label string, dst *uint64) error {
		v, ok := labels[label]
		if !ok {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad(label, v, "a non-negative integer")
		}
		*dst = n
		return nil
	}
	durLabel := func(label string, dst *time.Duration, most time.Duration) error {
		v, ok := labels[label]
		if !ok {
			return nil
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 || (most > 0 && dur > most) {
			want := "a positive duration such as 30s"
			if most > 0 {
				want += " of at most " + most.String()
			}
			return bad(label, v, want)
		}
		*dst = dur
		return nil
	}
	floatLabel := func(label string, dst *float64, lo, hi float64) error {
		v, ok := labels[label]
		if !ok {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f <= lo || f > hi {
			return bad(label, v, fmt.Sprintf("a number above %g and at most %g", lo, hi))
		}
		*dst = f
		return nil
	}
	_, explicitMax := labels[LabelMax]
	if err := errors.Join(
		uintLabel(LabelMin, &p.Min),
		uintLabel(LabelMax, &p.Max),
		uintLabel(LabelFactor, &p.Factor),
		durLabel(LabelZeroDuration, &p.ZeroDuration, 0),
		durLabel(LabelDownWindow, &p.DownWindow, 5*time.Minute),
		floatLabel(LabelTarget, &p.Target, 0, math.MaxFloat64),
		floatLabel(LabelTargetProportion, &p.TargetProportion, 0, 1),
	); err != nil {
		return Policy{}, err
	}
	if v, ok := labels[LabelZero]; ok {
		z, err := strconv.ParseBool(v)
		if err != nil {
			return Policy{}, bad(LabelZero, v, `"true" or "false"`)
		}
		p.Zero = z
	}
	_, hasTarget := labels[LabelTarget]
	_, hasType := labels[LabelType]
	p.Asked = explicitMax || hasTarget || hasType
	if v, ok := labels[LabelType]; ok {
		switch t := Type(v); t {
		case RPS, Capacity, CPU, Queue:
			p.Type = t
		default:
			return Policy{}, bad(LabelType, v, "one of rps, capacity, cpu, queue")
		}
	} else if hasTarget {
		p.Type = RPS // a target alone is Pro's default type
	}
	switch {
	case p.Factor > 100:
		return Policy{}, bad(LabelFactor, labels[LabelFactor], "a percentage from 0 to 100")
	case p.Max > d.Limit:
		return Policy{}, fmt.Errorf("%w: label %s (%d) must not exceed %d", ErrLabel, LabelMax, p.Max, d.Limit)
	case p.Min > p.Max && explicitMax:
		return Policy{}, fmt.Errorf("%w: label %s (%d) must not exceed %s (%d)", ErrLabel, LabelMin, p.Min, LabelMax, p.Max)
	case p.Min > p.Max:
		p.Max = min(p.Min, d.Limit) // a min above the default max raises it
		if p.Min > p.Max {
			return Policy{}, fmt.Errorf("%w: label %s (%d) must not exceed %d", ErrLabel, LabelMin, p.Min, d.Limit)
		}
	}
	return p, nil
}

// short keeps an echoed value readable.
func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
