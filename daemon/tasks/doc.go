// Package tasks is the daemon's durable task engine. Every change is a task
// stored before it runs; a task holds locks on the resources it touches
// (VM, node, pool) so that conflicting tasks queue while independent ones
// run in parallel; it reports progress and a log, can be canceled, and
// records who started it.
//
// A task runs as a sequence of steps. Each step records its undo (an action
// name and JSON arguments) durably BEFORE it acts, so that after a crash the
// engine knows everything that may have been done. A step that fails, a
// cancel, or a daemon restart in the middle of a task rolls the task back:
// the engine runs the recorded undo actions in reverse order. Undo actions
// are therefore idempotent (releasing an address that was never allocated
// succeeds). Queued tasks that never started simply run after a restart.
//
// A task that a caller may retry (Handler.Retry: the daemon's VM tasks) is
// not failed by such an interruption: once rolled back it is queued again
// under the same ID, so its idempotency key keeps naming it, and runs
// until it succeeds or fails for a reason of its own, at most
// Config.MaxAttempts runs (Task.Attempt counts them, the log says each).
// A task rolling back its own failure when the daemon stopped ends as that
// failure, and a task whose cancel was asked ends canceled.
//
// Durable writes are what a task costs, so the engine makes few: Journal
// records the undos of several steps in one write ahead of them; a step
// that changes only this process's memory (a scheduler reservation) takes a
// VolatileUndo, never stored; the log lines of steps without a stored undo,
// the progress and the message wait for the next write (Engine.Live shows
// them meanwhile); the queue is claimed many tasks per transaction.
//
//	eng, _ := tasks.New(tasks.Config{Store: st, Instance: "d1"})
//	eng.Handle("vm.create", tasks.Handler{Run: func(ctx context.Context, r *tasks.Run) error {
//		return r.Step(ctx, "allocate address", tasks.UndoAction("ipam.release", args), func(ctx context.Context) error {
//			return allocate(ctx)
//		})
//	}})
//	eng.OnUndo("ipam.release", release)
//	go eng.Run(ctx)
//	t, _, err := eng.Submit(ctx, tasks.Submission{Kind: "vm.create", Owner: uid, Resources: []string{"vm/" + id}})
package tasks
