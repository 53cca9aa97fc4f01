//go:build !linux

package scheduler

import "time"

// threadCPU is unavailable here; benchmarks then report wall time only.
func threadCPU() (time.Duration, bool) { return 0, false }
