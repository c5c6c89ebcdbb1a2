package faas

import (
	"fmt"
	"strconv"
)

// Execution modes of a function, chosen by its AnnotationMode annotation.
const (
	// ModeReplicas: long-running replicas behind the proxy (the default).
	ModeReplicas = "replicas"
	// ModeJob: one fresh container per call, the request body on its
	// stdin, its stdout the response, its exit code the status.
	ModeJob = "job"
)

// Annotations of job mode. Ours, so prefixed io.dockerfaas. (DESIGN.md §12).
const (
	// AnnotationMode selects the execution mode: ModeReplicas or ModeJob.
	AnnotationMode = "io.dockerfaas.mode"
	// AnnotationJobConcurrency bounds how many calls of a job function run
	// at once (a positive integer); absent, the daemon's JOB_CONCURRENCY.
	AnnotationJobConcurrency = "io.dockerfaas.job.concurrency"
	// AnnotationJobWarm is how many containers of a job function are kept
	// started ahead of its calls (0 to MaxJobWarm); absent, the daemon's
	// JOB_WARM.
	AnnotationJobWarm = "io.dockerfaas.job.warm"
	// AnnotationJobStream "true" sends a job's stdout on from its first
	// byte, with 200 and how the process ended in the trailers, as the
	// of-watchdog's streaming mode does; absent or "false", stdout is held
	// back (up to a bound) so that the status can say how it ended.
	AnnotationJobStream = "io.dockerfaas.job.stream"
)

// MaxJobWarm bounds the warm annotation: every one is an idle container.
const MaxJobWarm = 64

// MaxJobConcurrency bounds the concurrency annotation: every running job is
// a container, and a typo of a few zeros should not ask for a million.
const MaxJobConcurrency = 10000

// ModeOf reads a function's execution mode from its annotations: absent or
// empty is ModeReplicas; anything but the two modes is an error naming the
// annotation.
func ModeOf(annotations map[string]string) (string, error) {
	switch v := annotations[AnnotationMode]; v {
	case "", ModeReplicas:
		return ModeReplicas, nil
	case ModeJob:
		return ModeJob, nil
	default:
		return "", fmt.Errorf("annotations: %s %q: want %s or %s", AnnotationMode, v, ModeReplicas, ModeJob)
	}
}

// IsJob reports whether annotations select job mode; an invalid mode is
// not job mode (the API refuses it before it is stored).
func IsJob(annotations map[string]string) bool {
	m, err := ModeOf(annotations)
	return err == nil && m == ModeJob
}

// JobConcurrencyOf reads the concurrency annotation: 0 when absent (the
// daemon's default applies), an error naming the annotation when it is not
// an integer from 1 to MaxJobConcurrency.
func JobConcurrencyOf(annotations map[string]string) (int, error) {
	v, ok := annotations[AnnotationJobConcurrency]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxJobConcurrency {
		return 0, fmt.Errorf("annotations: %s %q: want an integer from 1 to %d", AnnotationJobConcurrency, v, MaxJobConcurrency)
	}
	return n, nil
}

// JobStreamOf reads the stream annotation: false when absent, an error
// naming the annotation when it is neither "true" nor "false".
func JobStreamOf(annotations map[string]string) (bool, error) {
	switch v, set := annotations[AnnotationJobStream]; {
	case !set || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, fmt.Errorf("annotations: %s %q: want true or false", AnnotationJobStream, v)
	}
}

// JobWarmOf reads the warm annotation: ok false when absent (the daemon's
// default applies), an error naming the annotation when it is not an
// integer from 0 to MaxJobWarm.
func JobWarmOf(annotations map[string]string) (n int, ok bool, err error) {
	v, set := annotations[AnnotationJobWarm]
	if !set {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxJobWarm {
		return 0, false, fmt.Errorf("annotations: %s %q: want an integer from 0 to %d", AnnotationJobWarm, v, MaxJobWarm)
	}
	return n, true, nil
}
