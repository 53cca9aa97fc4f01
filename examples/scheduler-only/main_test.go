package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	assert.Equal(t, `web-1 -> hv-1 (disk on [thin])
web-2 -> hv-2 (disk on [thin])
web-3: no node can take the request: hv-1: hosts a member of anti-affinity group "web"; hv-2: hosts a member of anti-affinity group "web"; hv-3: disk 0 (40 GiB): no pool with tags [ssd]; hv-4: in maintenance, disk 0 (40 GiB): no pool with tags [ssd]: resource exhausted
gpu job -> hv-3
evacuating hv-1: 0 moves, 1 unplaced
  cannot place web-1: no node can take the request: hv-1: is the node being vacated; hv-2: hosts a member of anti-affinity group "web"; hv-3: disk 0 (40 GiB): no pool with tags [ssd]; hv-4: in maintenance, disk 0 (40 GiB): no pool with tags [ssd]: resource exhausted
imbalance: 0.53
`, out.String())
}
