// Package store is the daemon's durable state behind one interface, with two
// implementations: sqlite (embedded, the default) and postgres (for several
// daemons sharing state). Both run the same SQL through sqlstore and pass the
// one conformance suite in storetest.
//
// Objects (clusters, nodes, pools, images, VMs, users, tokens) are stored as
// JSON documents with a few indexed columns (kind, id, name, owner, parent)
// and an optimistic version; tasks, their logs, their undo journals and the
// resource locks have tables of their own because the task engine queries
// them. Reads go through Reader and never wait for a write transaction;
// writes go through Update, which runs a function in one transaction.
//
//	err := st.Update(ctx, func(tx store.Tx) error {
//		return tx.CreateObject(ctx, &store.Object{Kind: store.KindCluster, ID: id, Name: "main", Data: data})
//	})
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/virtplane/virtplane"
)

// Kind names a type of object.
type Kind string

// The object kinds the daemon stores.
const (
	KindUser     Kind = "user"
	KindToken    Kind = "token"
	KindCluster  Kind = "cluster"
	KindNode     Kind = "node"
	KindPool     Kind = "pool"
	KindImage    Kind = "image"
	KindVM       Kind = "vm"
	KindSimState Kind = "simstate" // durable state of a simulated node's fakes
	KindLease    Kind = "lease"    // a role one daemon holds at a time (tasks.Engine)
	KindTemplate Kind = "template" // a domain template
	// KindConsoleTicket is a console ticket, by the SHA-256 of its secret.
	KindConsoleTicket Kind = "console-ticket"
	KindQuota         Kind = "quota"  // a user's limits, ID the user's
	KindAudit         Kind = "audit"  // one entry of the audit log
	KindBackup        Kind = "backup" // a VM's disk backup, Parent the VM
	// KindImageBase records that an image's base was copied whole into a
	// storage (Parent the image): a base volume without one is a copy a
	// crash cut short.
	KindImageBase Kind = "image-base"
)

// Object is one stored document. Name is unique within (Kind, Parent).
// Version starts at 1 and grows by one on each update; an update or delete
// that names a stale version fails with virtplane.ErrConflict.
type Object struct {
	Kind    Kind
	ID      string
	Name    string
	Owner   string // user ID of the owner, empty for shared infrastructure
	Parent  string // ID of the containing object (a node's cluster), or empty
	Version int64
	Data    []byte // JSON
	Created time.Time
	Updated time.Time
}

// ListOptions filters and pages a list of objects, ordered by ID.
type ListOptions struct {
	Owner  string // only objects of this owner, when set
	Parent string // only objects under this parent, when set
	After  string // only objects whose ID sorts after this (the page cursor)
	Limit  int    // at most this many; 0 means no limit
}

// TaskState is where a task is in its life.
type TaskState string

// The task states. Succeeded, Failed and Canceled are terminal.
const (
	TaskQueued    TaskState = "queued"
	TaskRunning   TaskState = "running"
	TaskUndoing   TaskState = "undoing"
	TaskSucceeded TaskState = "succeeded"
	TaskFailed    TaskState = "failed"
	TaskCanceled  TaskState = "canceled"
)

// Terminal reports whether a task in state s will not change any more.
func (s TaskState) Terminal() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskCanceled
}

// Task is one durable unit of change.
type Task struct {
	ID              string
	Kind            string    // what the task does ("vm.create")
	Owner           string    // user ID of who started it
	Target          string    // the object it acts on ("vm/ID")
	Resources       []string  // locks it needs while it runs ("vm/ID", "node/ID", "pool/ID")
	State           TaskState //
	Progress        int       // 0..100
	Message         string    // the current step, for people
	Error           string    // why it failed
	ErrorClass      string    // the virtplane error class of Error
	Input           []byte    // JSON, the request
	Result          []byte    // JSON, what it produced
	CancelRequested bool
	LeaseOwner      string    // the daemon instance running it
	LeaseUntil      time.Time // when another instance may take it over
	IdempotencyKey  string    // the caller's key; unique per owner when set
	// Attempt is the number of the current (or last) run of the task,
	// from 1; MaxAttempts bounds it. A task interrupted by a stopped daemon
	// is rolled back and queued again with Attempt one higher while
	// Attempt < MaxAttempts (0 or 1: never again).
	Attempt     int
	MaxAttempts int
	Created     time.Time
	Started     time.Time
	Finished    time.Time
}

// TaskFilter selects tasks to list, ordered by ID.
type TaskFilter struct {
	Owner  string
	Target string
	States []TaskState
	After  string
	Limit  int
}

// LogLine is one line of a task's log.
type LogLine struct {
	Seq  int
	At   time.Time
	Line string
}

// Undo is one recorded undo step of a task: an action the task engine knows
// by name with its JSON arguments. It is recorded before the step it undoes
// runs, so after a crash the engine can undo a step whose outcome is unknown;
// every undo action must therefore be idempotent.
type Undo struct {
	Seq    int
	Action string
	Args   []byte
	Done   bool
}

// ErrIdempotencyKeyTaken is CreateTask's answer to a repeated idempotency
// key; it is an ErrAlreadyExists.
var ErrIdempotencyKeyTaken = fmt.Errorf("idempotency key taken: %w", virtplane.ErrAlreadyExists)

// Reader reads committed state. Reads never wait for a write transaction.
type Reader interface {
	GetObject(ctx context.Context, kind Kind, id string) (Object, error)
	GetObjectByName(ctx context.Context, kind Kind, parent, name string) (Object, error)
	ListObjects(ctx context.Context, kind Kind, opts ListOptions) ([]Object, error)
	CountObjects(ctx context.Context, kind Kind, opts ListOptions) (int, error)

	GetTask(ctx context.Context, id string) (Task, error)
	TaskByIdempotencyKey(ctx context.Context, owner, key string) (Task, error)
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, error)
	TaskLog(ctx context.Context, id string) ([]LogLine, error)
	TaskUndos(ctx context.Context, id string) ([]Undo, error)
	// LockHolder returns the ID of the task holding the lock on resource, or "".
	LockHolder(ctx context.Context, resource string) (string, error)
}

// Tx is a write transaction. Its reads see its own writes.
type Tx interface {
	Reader
	CreateObject(ctx context.Context, o *Object) error
	// UpdateObject stores o if o.Version is the stored version, and bumps it.
	UpdateObject(ctx context.Context, o *Object) error
	// DeleteObject deletes the object if version is the stored one (0: any).
	DeleteObject(ctx context.Context, kind Kind, id string, version int64) error

	// CreateTask stores a new task. When its owner already has a task with
	// its idempotency key it returns ErrIdempotencyKeyTaken, and the
	// transaction stays usable.
	CreateTask(ctx context.Context, t *Task) error
	// UpdateTask stores the fields of t that change while it runs: state,
	// progress, message, error, result, cancel flag, lease, times and
	// attempt. What a task was created with (ID, Kind, Owner, Target,
	// Resources, Input, IdempotencyKey, MaxAttempts, Created) is fixed.
	UpdateTask(ctx context.Context, t *Task) error
	// ClaimTask moves a queued task to running (message "running", start
	// time now) under owner's lease; it reports false when another instance
	// claimed it first.
	ClaimTask(ctx context.Context, id, owner string, until time.Time) (bool, error)
	// RenewLeases extends the lease of every non-terminal task owner holds.
	RenewLeases(ctx context.Context, owner string, until time.Time) error
	// AppendTaskLog adds lines to a task's log (their Seq is assigned).
	AppendTaskLog(ctx context.Context, id string, lines ...LogLine) error
	// PushUndo appends undo steps (their Action and Args) to the task's
	// journal, in order, and returns the Seq of the last.
	PushUndo(ctx context.Context, id string, undos ...Undo) (int, error)
	MarkUndoDone(ctx context.Context, id string, seq int) error

	// Lock takes the locks on every resource for task id, all or none; it
	// reports false when any is held by another task.
	Lock(ctx context.Context, id string, resources []string) (bool, error)
	// Unlock releases every lock task id holds.
	Unlock(ctx context.Context, id string) error
}

// Store is the daemon's durable state.
type Store interface {
	Reader
	// Update runs f in one write transaction: committed when f returns nil,
	// rolled back otherwise.
	Update(ctx context.Context, f func(Tx) error) error
	Close() error
}

// NewID returns a new object or task ID: 16 hex digits of the current time
// in nanoseconds, then 8 random hex digits, so IDs sort by creation time
// (list pages and task queues rely on that) and do not collide across daemons.
func NewID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
}
