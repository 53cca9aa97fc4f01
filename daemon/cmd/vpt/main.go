package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/virtplane/virtplane"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// env is what a run of the CLI reads and writes; tests give their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// exitCodes are the exit codes: 0 success, 1 an error of no class, and
// one per error class, so that scripts can tell "not there" from "try
// again later".
func exitCodes() []exitClass {
	return []exitClass{
		{virtplane.ErrInvalidArgument, 2},
		{virtplane.ErrNotFound, 3},
		{virtplane.ErrAlreadyExists, 4},
		{virtplane.ErrConflict, 5},
		{virtplane.ErrPermissionDenied, 6},
		{virtplane.ErrUnauthenticated, 7},
		{virtplane.ErrUnavailable, 8},
		{virtplane.ErrResourceExhausted, 9},
		{virtplane.ErrTimeout, 10},
		{virtplane.ErrNotImplemented, 11},
		{virtplane.ErrCanceled, 12},
	}
}

type exitClass struct {
	class error
	code  int
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	for _, e := range exitCodes() {
		if errors.Is(err, e.class) {
			return e.code
		}
	}
	return 1
}

// usageError marks a wrong command line (unknown flag, missing argument).
type usageError struct{ error }

func (e usageError) Unwrap() error { return virtplane.ErrInvalidArgument }

func run(ctx context.Context, args []string, e env) int {
	root := rootCommand(e)
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{err}
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "vpt:", err)
	}
	return exitCode(err)
}
