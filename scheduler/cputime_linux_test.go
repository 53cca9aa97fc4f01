package scheduler

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used (user + system),
// so a benchmark can report its cost per core on a machine shared with
// other work, where wall time counts the waiting too.
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
