// Package fake is an in-memory scripts.Runner for tests of code that runs
// scripts. It passes the same conformance suite (scripttest.Run) as the SSH
// runner: it interprets a small subset of shell — comments, `echo WORDS`,
// `printf '%s\n' "$NAME"`, `sleep SECONDS` and `exit N`, each optionally
// redirected with `>&2` — and reports anything else as "command not found"
// with exit code 127. Timeouts and cancels stop a sleeping script the way a
// killed remote process stops.
//
// Beyond the interpreter it records every call, injects errors per target
// and lets a test replace the interpreter with its own handler:
//
//	r := fake.New()
//	r.Fail("vm1", virtplane.Errorf(virtplane.ErrUnavailable, "vm1 unreachable"))
//	ex, _ := scripts.NewExecutor(scripts.ExecutorConfig{Runner: r})
//	res, err := ex.Run(ctx, scripts.RunRequest{Script: s, User: "alice", Targets: targets})
//	_ = r.Calls()
package fake
