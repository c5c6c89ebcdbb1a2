//go:build !race

package e2e

// raceEnabled reports that this test binary runs with the race detector.
const raceEnabled = false
