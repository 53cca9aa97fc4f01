package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSellAVM(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out, "", "", "42"))
	assert.Contains(t, out.String(), "retry with the same key: same vm")
	assert.Contains(t, out.String(), "is running on node")
	assert.Contains(t, out.String(), "192.0.2.")
	assert.Contains(t, out.String(), "order 42 ended")
	t.Log(out.String())
}
