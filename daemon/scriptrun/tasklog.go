package scriptrun

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/scripts"
)

// taskLog puts a run's output, already masked, into the task's log line by
// line, "[target stream] line", in batches: one durable write every
// flushEvery at most, so output streams without a write per line.
type taskLog struct {
	tr      lineLogger
	mu      sync.Mutex
	partial map[string]*bytes.Buffer // by target and stream
	lines   []string
	kick    chan struct{}
	done    chan struct{}
}

const (
	flushEvery  = 500 * time.Millisecond
	maxLineLen  = 4096
	maxLogLines = 20000 // per run: a script that prints without end stops filling the store
)

// lineLogger is where the lines go (*tasks.Run).
type lineLogger interface {
	LogLines(ctx context.Context, lines ...string) error
}

var _ lineLogger = (*tasks.Run)(nil)

func newTaskLog(tr lineLogger) *taskLog {
	return &taskLog{tr: tr, partial: map[string]*bytes.Buffer{}, kick: make(chan struct{}, 1)}
}

// output takes a masked chunk (scripts.RunRequest.OnOutput).
func (l *taskLog) output(c scripts.OutputChunk) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := c.Target + " " + c.Stream
	b := l.partial[key]
	if b == nil {
		b = &bytes.Buffer{}
		l.partial[key] = b
	}
	b.Write(c.Data)
	for {
		i := bytes.IndexByte(b.Bytes(), '\n')
		switch {
		case i > maxLineLen || (i < 0 && b.Len() > maxLineLen):
			// A line without end (or a very long one) goes in pieces.
			l.add(key, b.Next(maxLineLen))
		case i < 0:
			return
		default:
			l.add(key, b.Next(i + 1)[:i])
		}
	}
}

// add keeps a line; the caller holds mu.
func (l *taskLog) add(key string, line []byte) {
	switch {
	case len(l.lines) < maxLogLines:
		l.lines = append(l.lines, "["+key+"] "+string(line))
	case len(l.lines) == maxLogLines:
		l.lines = append(l.lines, "(output beyond this is in the run's result only)")
	}
}

// start writes the lines as they come, every flushEvery, until stop. The
// writes outlive a cancel of the run: a canceled run's output is kept.
func (l *taskLog) start(ctx context.Context) {
	l.done = make(chan struct{})
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(l.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		written := 0
		for {
			select {
			case <-l.kick:
				l.flush(ctx, written)
				return
			case <-t.C:
				written = l.flush(ctx, written)
			}
		}
	}()
}

func (l *taskLog) flush(ctx context.Context, from int) int {
	l.mu.Lock()
	lines := append([]string(nil), l.lines[from:]...)
	l.mu.Unlock()
	if len(lines) == 0 {
		return from
	}
	if err := l.tr.LogLines(ctx, lines...); err != nil {
		return from // the next flush tries again
	}
	return from + len(lines)
}

// stop writes what is left, the unterminated last lines included.
func (l *taskLog) stop() {
	l.mu.Lock()
	for key, b := range l.partial {
		if b.Len() > 0 {
			l.add(key, b.Bytes())
			b.Reset()
		}
	}
	l.mu.Unlock()
	l.kick <- struct{}{}
	<-l.done
}
