package sqlite_test

import (
	"testing"

	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/ipam/ipamtest"
)

func TestIPAMConformance(t *testing.T) {
	ipamtest.Run(t, func(t *testing.T) ipam.Store { return dbtest.SQLite(t).IPAM() })
}
