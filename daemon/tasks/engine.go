package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Handler runs the tasks of one kind.
type Handler struct {
	// Run does the work in steps (Run.Step). Returning an error rolls the
	// task back.
	Run func(ctx context.Context, r *Run) error
	// Finish, when set, runs in the transaction that ends the task with its
	// final state (succeeded, failed or canceled, after any undo), so the
	// target object's state changes atomically with the task's.
	Finish func(ctx context.Context, tx store.Tx, t *store.Task) error
	// Placing marks tasks that read or change the capacity in use on the
	// nodes (create, resize, migrate, delete): of the daemons sharing a
	// store, only the placement leader runs them, so that its view of the
	// nodes, kept in its memory, is the whole truth.
	Placing bool
	// Retry marks tasks that a caller may retry: one interrupted by a
	// stopped daemon is rolled back and queued again, up to
	// Config.MaxAttempts runs in all (retry.go), instead of failing.
	Retry bool
}

// UndoFunc undoes one step from its recorded arguments. It must be
// idempotent: after a crash it may run for a step that never acted, or twice.
type UndoFunc func(ctx context.Context, args json.RawMessage) error

// Config configures an Engine.
type Config struct {
	Store store.Store
	// Instance names this daemon; it must be stable across restarts so that a
	// restarted daemon takes back its own unfinished tasks at once.
	Instance string
	// Workers is how many tasks run at once (default 64).
	Workers int
	// Lease is how long another daemon waits before taking over the running
	// tasks of a daemon that stopped renewing them (default 30s).
	Lease time.Duration
	// Poll is how often the queue is scanned without a wake-up (default 1s).
	Poll time.Duration
	// MaxAttempts bounds the runs of a Retry task that daemon stops keep
	// interrupting (default 10); it is stored with each task at submission.
	MaxAttempts int
	// OnChange is called after each committed change of a task (state,
	// progress); the events and metrics packages hang off it.
	OnChange func(store.Task)
	// OnLead is called when this instance takes the placement lead, before
	// it runs a Placing task, with took true: what it knew of the nodes'
	// capacity may be stale (see Handler.Placing). While it leads, it is
	// called again at each lease renewal with took false, to pick up
	// changes of nodes and clusters made through other daemons.
	OnLead func(ctx context.Context, took bool)
	Logger *slog.Logger
}

// Submission asks for a task.
type Submission struct {
	// ID of the new task; default a new one. Known ahead, it can go into
	// the objects made with the task.
	ID             string
	Kind           string
	Owner          string
	Target         string
	Resources      []string
	Input          any
	IdempotencyKey string
}

// Engine runs durable tasks.
type Engine struct {
	cfg      Config
	st       store.Store
	log      *slog.Logger
	handlers map[string]Handler
	undos    map[string]UndoFunc
	wake     chan struct{}
	sem      chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelFunc // tasks this instance runs now
	live    map[string]liveState          // their progress, newer than the store's
	waiters map[string][]chan struct{}
	wg      sync.WaitGroup
	// lead is this instance's hold on the placement lead.
	lead leadState
}

// leadState is what an instance knows of its placement lead.
type leadState struct {
	held  bool      // the lease names this instance and has not run out
	until time.Time // when the lease runs out unless renewed
	// ready is false after a takeover until the previous leader's Placing
	// tasks have ended (or been rolled back) and OnLead has run.
	ready bool
}

// leaseData is the placement lease as stored (an object of KindLease).
type leaseData struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// placementLease is the ID of the lease object of the placement lead.
const placementLease = "placement"

// New returns an engine; register handlers and undo actions, then Run it.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "tasks: Store is required")
	}
	if cfg.Instance == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "tasks: Instance is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		cfg: cfg, st: cfg.Store, log: cfg.Logger,
		handlers: map[string]Handler{}, undos: map[string]UndoFunc{},
		wake: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Workers),
		running: map[string]context.CancelFunc{}, live: map[string]liveState{}, waiters: map[string][]chan struct{}{},
	}, nil
}

// liveState is what a running task reports between its durable writes.
type liveState struct {
	progress int
	message  string
}

// Live returns t with the progress and message of the moment when this
// instance runs it: they are published at once but stored only with the
// task's end, which saves a write per step.
func (e *Engine) Live(t store.Task) store.Task {
	if t.State.Terminal() {
		return t
	}
	e.mu.Lock()
	l, ok := e.live[t.ID]
	e.mu.Unlock()
	if ok {
		t.Progress, t.Message = l.progress, l.message
	}
	return t
}

// Handle registers the handler of a task kind. Call before Run.
func (e *Engine) Handle(kind string, h Handler) { e.handlers[kind] = h }

// OnUndo registers an undo action. Call before Run.
func (e *Engine) OnUndo(action string, f UndoFunc) { e.undos[action] = f }

// Wake makes the engine scan the queue now (after a Submit in a caller's own
// transaction commits).
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) changed(t store.Task) {
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(t)
	}
	if !t.State.Terminal() {
		if t.State == store.TaskRunning || t.State == store.TaskUndoing {
			e.mu.Lock()
			if _, ok := e.running[t.ID]; ok {
				e.live[t.ID] = liveState{progress: t.Progress, message: t.Message}
			}
			e.mu.Unlock()
		}
		return
	}
	e.mu.Lock()
	ws := e.waiters[t.ID]
	delete(e.waiters, t.ID)
	delete(e.live, t.ID)
	e.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// Submit stores a new queued task and wakes the engine. With an idempotency
// key that the owner used before, it returns the earlier task and false.
func (e *Engine) Submit(ctx context.Context, s Submission) (store.Task, bool, error) {
	var t store.Task
	var created bool
	err := e.st.Update(ctx, func(tx store.Tx) error {
		var err error
		t, created, err = e.SubmitTx(ctx, tx, s)
		return err
	})
	if err != nil {
		return store.Task{}, false, err
	}
	if created {
		e.changed(t)
		e.Wake()
	}
	return t, created, nil
}

// SubmitTx stores a new queued task inside the caller's transaction, so the
// task and the objects it will act on appear together. Call Wake after the
// transaction commits.
func (e *Engine) SubmitTx(ctx context.Context, tx store.Tx, s Submission) (store.Task, bool, error) {
	h, ok := e.handlers[s.Kind]
	if !ok {
		return store.Task{}, false, virtplane.Errorf(virtplane.ErrInvalidArgument, "task kind %q has no handler", s.Kind)
	}
	input, err := json.Marshal(s.Input)
	if err != nil {
		return store.Task{}, false, virtplane.Errorf(virtplane.ErrInvalidArgument, "task input: %v", err)
	}
	if s.ID == "" {
		s.ID = store.NewID()
	}
	t := store.Task{
		ID: s.ID, Kind: s.Kind, Owner: s.Owner, Target: s.Target,
		Resources: s.Resources, State: store.TaskQueued, Input: input,
		IdempotencyKey: s.IdempotencyKey, Message: "queued",
		Attempt: 1, MaxAttempts: e.maxAttempts(h),
	}
	// The idempotency key is looked up only when the insert finds it taken:
	// the common case costs one statement.
	err = tx.CreateTask(ctx, &t)
	if errors.Is(err, store.ErrIdempotencyKeyTaken) {
		prev, err := tx.TaskByIdempotencyKey(ctx, s.Owner, s.IdempotencyKey)
		return prev, false, err
	}
	if err != nil {
		return store.Task{}, false, err
	}
	return t, true, nil
}

// Cancel asks a task to stop. A queued task ends at once; a running one is
// interrupted at its next step and rolled back. A finished task is a conflict.
func (e *Engine) Cancel(ctx context.Context, id string) error {
	var ended *store.Task
	err := e.st.Update(ctx, func(tx store.Tx) error {
		t, err := tx.GetTask(ctx, id)
		if err != nil {
			return err
		}
		if t.State.Terminal() {
			return virtplane.Errorf(virtplane.ErrConflict, "task %s is %s", id, t.State)
		}
		t.CancelRequested = true
		if t.State == store.TaskQueued {
			t.State, t.Finished, t.Message = store.TaskCanceled, time.Now(), "canceled before it started"
			t.Error, t.ErrorClass = "canceled", virtplane.ErrCanceled.Error()
			if h, ok := e.handlers[t.Kind]; ok && h.Finish != nil {
				if err := h.Finish(ctx, tx, &t); err != nil {
					return err
				}
			}
			ended = &t
		}
		return tx.UpdateTask(ctx, &t)
	})
	if err != nil {
		return err
	}
	if ended != nil {
		e.changed(*ended)
		return nil
	}
	e.mu.Lock()
	if cancel, ok := e.running[id]; ok {
		cancel()
	}
	e.mu.Unlock()
	return nil
}

// Wait returns the task once it is terminal, or the context's error.
func (e *Engine) Wait(ctx context.Context, id string) (store.Task, error) {
	for {
		ch := make(chan struct{})
		e.mu.Lock()
		e.waiters[id] = append(e.waiters[id], ch)
		e.mu.Unlock()
		t, err := e.st.GetTask(ctx, id)
		if err != nil || t.State.Terminal() {
			return t, err
		}
		// Another daemon may run it: poll as well as wait for the signal.
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-ch:
		case <-time.After(e.cfg.Poll):
		}
	}
}

// Run recovers the tasks this instance left unfinished, then runs queued
// tasks until ctx ends; it waits for the running tasks before returning.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.recover(ctx, true); err != nil {
		return err
	}
	if err := e.keepLead(ctx); err != nil && ctx.Err() == nil {
		e.log.Warn("placement lead", "err", err)
	}
	tick := time.NewTicker(e.cfg.Poll)
	defer tick.Stop()
	renew := time.NewTicker(e.cfg.Lease / 3)
	defer renew.Stop()
	for {
		if err := e.dispatch(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("task dispatch", "err", err)
		}
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return nil
		case <-e.wake:
		case <-tick.C:
		case <-renew.C:
			if err := e.renew(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("task lease renewal", "err", err)
			}
			if err := e.keepLead(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("placement lead", "err", err)
			}
			e.mu.Lock()
			ready := e.lead.ready
			e.mu.Unlock()
			if ready && e.cfg.OnLead != nil {
				e.cfg.OnLead(ctx, false)
			}
			if err := e.recover(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Warn("task recovery", "err", err)
			}
		}
	}
}

// recover rolls back the running tasks of this instance's previous life
// (at start) and those whose lease ran out (another daemon died).
func (e *Engine) recover(ctx context.Context, atStart bool) error {
	ts, err := e.st.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{store.TaskRunning, store.TaskUndoing}})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, t := range ts {
		e.mu.Lock()
		_, mine := e.running[t.ID]
		e.mu.Unlock()
		if mine {
			continue
		}
		if !(atStart && t.LeaseOwner == e.cfg.Instance) && !t.LeaseUntil.Before(now) {
			continue
		}
		var took bool
		var failed error // the run's own failure, when it was rolling back one
		err := e.st.Update(ctx, func(tx store.Tx) error {
			cur, err := tx.GetTask(ctx, t.ID)
			if err != nil {
				return err
			}
			if cur.LeaseOwner != t.LeaseOwner || !cur.LeaseUntil.Equal(t.LeaseUntil) || cur.State.Terminal() {
				return nil // someone else took it over
			}
			failed = storedFailure(cur)
			cur.LeaseOwner, cur.LeaseUntil = e.cfg.Instance, time.Now().Add(e.cfg.Lease)
			cur.State = store.TaskUndoing
			cur.Message = "rolling back after the daemon running it stopped"
			if err := tx.AppendTaskLog(ctx, cur.ID, store.LogLine{At: time.Now(), Line: cur.Message}); err != nil {
				return err
			}
			took = true
			t = cur
			return tx.UpdateTask(ctx, &cur)
		})
		if err != nil {
			return err
		}
		if took {
			e.log.Info("rolling back interrupted task", "task", t.ID, "kind", t.Kind)
			e.changed(t)
			e.interrupted(ctx, t, failed)
		}
	}
	return nil
}

func (e *Engine) renew(ctx context.Context) error {
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		return tx.RenewLeases(ctx, e.cfg.Instance, time.Now().Add(e.cfg.Lease))
	}); err != nil {
		return err
	}
	// Cancels asked through another daemon arrive as a flag in the store.
	e.mu.Lock()
	ids := make([]string, 0, len(e.running))
	for id := range e.running {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		t, err := e.st.GetTask(ctx, id)
		if err == nil && t.CancelRequested {
			e.mu.Lock()
			if c, ok := e.running[id]; ok {
				c()
			}
			e.mu.Unlock()
		}
	}
	return nil
}

// dispatch starts the queued tasks whose resources are free, oldest first.
// A task blocked on a resource also blocks younger tasks that want any of
// its resources, so tasks on one resource run in the order they came. The
// tasks of one pass are claimed in one transaction: claiming one at a time
// made the dispatcher, a single goroutine, wait for a commit per task.
func (e *Engine) dispatch(ctx context.Context) error {
	for {
		// Read only as much of the queue as there are free workers (with
		// room for blocked tasks): a long queue is not re-read on every wake-up.
		free := cap(e.sem) - len(e.sem)
		if free == 0 {
			return nil
		}
		limit := min(512, 4*free)
		queued, err := e.st.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{store.TaskQueued}, Limit: limit})
		if err != nil {
			return err
		}
		blocked := map[string]bool{}
		var batch []store.Task
		leading := e.leading(ctx)
		for _, t := range queued {
			if len(batch) == free {
				break
			}
			if slices.ContainsFunc(t.Resources, func(r string) bool { return blocked[r] }) {
				markBlocked(blocked, t)
				continue
			}
			if e.handlers[t.Kind].Placing && !leading {
				// The leader runs it; younger tasks on its resources wait.
				markBlocked(blocked, t)
				continue
			}
			batch = append(batch, t)
		}
		for range batch {
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		claimed, err := e.claim(ctx, batch, blocked)
		for range len(batch) - len(claimed) {
			<-e.sem
		}
		if err != nil {
			return err
		}
		for _, t := range claimed {
			e.start(ctx, t)
		}
		if len(claimed) == 0 || len(queued) < limit {
			return nil
		}
	}
}

// keepLead takes or renews the placement lead: the lease object names one
// instance until a time; an instance takes it when it is missing, its own,
// or run out. The object's version makes two takers exclusive. An instance
// that cannot renew stops leading at once; the others wait for the lease to
// run out.
func (e *Engine) keepLead(ctx context.Context) error {
	if !e.hasPlacing() {
		return nil
	}
	now := time.Now()
	until := now.Add(e.cfg.Lease)
	var held, tookOver bool
	err := e.st.Update(ctx, func(tx store.Tx) error {
		held, tookOver = false, false
		data, err := json.Marshal(leaseData{Holder: e.cfg.Instance, Until: until})
		if err != nil {
			return err
		}
		o, err := tx.GetObject(ctx, store.KindLease, placementLease)
		if errors.Is(err, virtplane.ErrNotFound) {
			held, tookOver = true, true
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindLease, ID: placementLease, Name: placementLease, Data: data})
		}
		if err != nil {
			return err
		}
		var cur leaseData
		if err := json.Unmarshal(o.Data, &cur); err != nil {
			return virtplane.Errorf(virtplane.ErrUnavailable, "placement lease: %v", err)
		}
		if cur.Holder != e.cfg.Instance && cur.Until.After(now) {
			return nil // another leads
		}
		held, tookOver = true, cur.Holder != e.cfg.Instance
		o.Data = data
		return tx.UpdateObject(ctx, &o)
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.lead = leadState{}
		return err
	}
	if !held {
		e.lead = leadState{}
		return nil
	}
	if tookOver || !e.lead.held {
		e.lead.ready = false
	}
	e.lead.held, e.lead.until = true, until
	return nil
}

func (e *Engine) hasPlacing() bool {
	for _, h := range e.handlers {
		if h.Placing {
			return true
		}
	}
	return false
}

// leading reports whether this instance may run Placing tasks now: it
// holds the lead, and after taking it, no Placing task of another instance
// is running any more (recovery rolls back those of a dead leader when
// their leases run out) and OnLead has run.
func (e *Engine) leading(ctx context.Context) bool {
	e.mu.Lock()
	l := e.lead
	e.mu.Unlock()
	if !l.held || !time.Now().Before(l.until) {
		return false
	}
	if l.ready {
		return true
	}
	ts, err := e.st.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{store.TaskRunning, store.TaskUndoing}})
	if err != nil {
		return false
	}
	for _, t := range ts {
		if t.LeaseOwner != e.cfg.Instance && e.handlers[t.Kind].Placing {
			return false
		}
	}
	if e.cfg.OnLead != nil {
		e.cfg.OnLead(ctx, true)
	}
	e.mu.Lock()
	e.lead.ready = e.lead.held
	e.mu.Unlock()
	return true
}

func markBlocked(blocked map[string]bool, t store.Task) {
	for _, r := range t.Resources {
		blocked[r] = true
	}
}

// claim locks the resources of the candidates and moves them to running, in
// one transaction, skipping (and marking blocked) those whose resources are
// held or that another daemon claimed first.
func (e *Engine) claim(ctx context.Context, candidates []store.Task, blocked map[string]bool) ([]store.Task, error) {
	if len(candidates) == 0 {
		return nil, nil
	}
	var claimed []store.Task
	err := e.st.Update(ctx, func(tx store.Tx) error {
		claimed = claimed[:0]
		until := time.Now().Add(e.cfg.Lease)
		for _, t := range candidates {
			if slices.ContainsFunc(t.Resources, func(r string) bool { return blocked[r] }) {
				markBlocked(blocked, t) // an older candidate of this pass was refused its lock
				continue
			}
			locked, err := tx.Lock(ctx, t.ID, t.Resources)
			if err != nil {
				return err
			}
			if !locked {
				markBlocked(blocked, t)
				continue
			}
			ok, err := tx.ClaimTask(ctx, t.ID, e.cfg.Instance, until)
			if err != nil {
				return err
			}
			if !ok {
				// Claimed by another daemon since the queue was read.
				if err := tx.Unlock(ctx, t.ID); err != nil {
					return err
				}
				markBlocked(blocked, t)
				continue
			}
			t.State, t.LeaseOwner, t.LeaseUntil, t.Started = store.TaskRunning, e.cfg.Instance, until, time.Now()
			t.Message = "running"
			claimed = append(claimed, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

func (e *Engine) start(ctx context.Context, t store.Task) {
	runCtx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.running[t.ID] = cancel
	e.mu.Unlock()
	e.changed(t)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() { <-e.sem }()
		defer cancel()
		if t.CancelRequested {
			cancel()
		}
		r := &Run{e: e, task: t}
		if t.Attempt > 1 {
			r.pending = append(r.pending, store.LogLine{At: time.Now(), Line: fmt.Sprintf("attempt %d of %d", t.Attempt, t.MaxAttempts)})
		}
		h := e.handlers[t.Kind]
		var err error
		if h.Run == nil {
			err = virtplane.Errorf(virtplane.ErrNotImplemented, "task kind %q has no handler", t.Kind)
		} else {
			err = runHandler(runCtx, h, r)
		}
		if err == nil && runCtx.Err() != nil && ctx.Err() == nil {
			err = virtplane.Errorf(virtplane.ErrCanceled, "task canceled")
		}
		if ctx.Err() != nil {
			// The daemon is stopping: leave the task to the next start's recovery.
			e.mu.Lock()
			delete(e.running, t.ID)
			delete(e.live, t.ID)
			e.mu.Unlock()
			return
		}
		t = r.task
		if err == nil {
			t.Result = r.result
		}
		e.finish(context.WithoutCancel(ctx), t, r, err)
		e.mu.Lock()
		delete(e.running, t.ID)
		delete(e.live, t.ID)
		e.mu.Unlock()
		e.Wake()
	}()
}

func runHandler(ctx context.Context, h Handler, r *Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("task handler panicked: %v", p)
		}
	}()
	return h.Run(ctx, r)
}

// finish ends a task: on error it runs the undo journal backwards, then
// records the final state and releases the locks in one transaction. run is
// the handler's run, nil when recovery finishes a task of a dead daemon.
func (e *Engine) finish(ctx context.Context, t store.Task, run *Run, cause error) {
	if cause != nil {
		// Stored with the rollback's start: a rollback that a stopped
		// daemon interrupts is then finished as the failure it was.
		t.Error = cause.Error()
		if c := virtplane.Class(cause); c != nil {
			t.ErrorClass = c.Error()
		}
		if undoErr := e.undo(ctx, &t, run); undoErr != nil {
			cause = errors.Join(cause, fmt.Errorf("rollback incomplete: %w", undoErr))
		}
	}
	e.record(ctx, t, run, cause)
}

// record stores a task's end (after any undo) and releases its locks.
func (e *Engine) record(ctx context.Context, t store.Task, run *Run, cause error) {
	state := store.TaskSucceeded
	if cause != nil {
		state = store.TaskFailed
		if errors.Is(cause, virtplane.ErrCanceled) || errors.Is(cause, context.Canceled) {
			state = store.TaskCanceled
		}
	}
	h := e.handlers[t.Kind]
	for attempt := 0; ; attempt++ {
		final := t
		final.State, final.Finished, final.LeaseUntil = state, time.Now(), time.Time{}
		if cause == nil {
			final.Progress, final.Message = 100, "done"
		} else {
			final.Error = cause.Error()
			if c := virtplane.Class(cause); c != nil {
				final.ErrorClass = c.Error()
			}
			final.Message = string(state)
		}
		var lines []store.LogLine
		if run != nil {
			lines = run.pending
		}
		if cause != nil {
			lines = append(lines[:len(lines):len(lines)], store.LogLine{At: time.Now(), Line: "ended: " + cause.Error()})
		}
		err := e.st.Update(ctx, func(tx store.Tx) error {
			if err := tx.AppendTaskLog(ctx, t.ID, lines...); err != nil {
				return err
			}
			if h.Finish != nil {
				if err := h.Finish(ctx, tx, &final); err != nil {
					return err
				}
			}
			if err := tx.UpdateTask(ctx, &final); err != nil {
				return err
			}
			return tx.Unlock(ctx, t.ID)
		})
		if err == nil {
			e.changed(final)
			return
		}
		e.log.Warn("recording the end of a task", "task", t.ID, "err", err)
		if attempt >= 20 || ctx.Err() != nil {
			return // the lease runs out and recovery finishes it
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
}

// undo runs the task's pending undo steps in reverse order, marking each
// done durably; the run's volatile undos (none after a restart: what they
// undo died with the process) run in their places. A step that keeps
// failing stops the rollback: the steps before it stay pending and the task
// records the failure.
func (e *Engine) undo(ctx context.Context, t *store.Task, run *Run) error {
	undos, err := e.st.TaskUndos(ctx, t.ID)
	if err != nil {
		return err
	}
	if t.State != store.TaskUndoing {
		t.State, t.Message = store.TaskUndoing, "rolling back"
		if err := e.st.Update(ctx, func(tx store.Tx) error {
			if run != nil {
				if err := run.flushLog(ctx, tx); err != nil {
					return err
				}
			}
			return tx.UpdateTask(ctx, t)
		}); err != nil {
			return err
		}
		if run != nil {
			run.pending = run.pending[:0]
		}
		e.changed(*t)
	}
	var volatile []volatileUndo
	if run != nil {
		volatile = run.volatile
	}
	runVolatile := func(after int) error {
		for len(volatile) > 0 && volatile[len(volatile)-1].after >= after {
			v := volatile[len(volatile)-1]
			volatile = volatile[:len(volatile)-1]
			if err := v.fn(ctx); err != nil {
				return fmt.Errorf("undo of in-memory step: %w", err)
			}
		}
		return nil
	}
	for i, u := range slices.Backward(undos) {
		if err := runVolatile(i + 1); err != nil {
			return err
		}
		if u.Done {
			continue
		}
		f, ok := e.undos[u.Action]
		if !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "undo action %q is not registered", u.Action)
		}
		var err error
		for attempt := range 5 {
			uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err = f(uctx, u.Args)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("undo %s (step %d): %w", u.Action, u.Seq, err)
		}
		if err := e.st.Update(ctx, func(tx store.Tx) error {
			if err := tx.MarkUndoDone(ctx, t.ID, u.Seq); err != nil {
				return err
			}
			return tx.AppendTaskLog(ctx, t.ID, store.LogLine{At: time.Now(), Line: "undone: " + u.Action})
		}); err != nil {
			return err
		}
	}
	return runVolatile(0)
}
