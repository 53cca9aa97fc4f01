package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailover(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out))
	s := out.String()
	t.Log(s)
	assert.Contains(t, s, "node-1 failed")
	assert.Contains(t, s, "node-1 fenced (power)")
	assert.Regexp(t, `db-1 restarted on node-[23]`, s)
	assert.Regexp(t, `web-1 restarted on node-[23]`, s)
	assert.Contains(t, s, "batch-1 not restarted")
	assert.Contains(t, s, "running now: node-1: down;")
	assert.Regexp(t, `HA VMs back [0-9.]+s after the crash`, s)
}
