package flow_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// A node put into maintenance through another daemon (here: straight in the
// store, which the flow's caches do not see) stops taking VMs on the
// placement leader at its next Lead call; before it, the leader's view is
// the one it built.
func TestLeadPicksUpNodeChangesMadeElsewhere(t *testing.T) {
	ctx := t.Context()
	fx := newFixture(t, "")
	_, tk := fx.create(t, "first", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)

	require.NoError(t, fx.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindNode, fx.node.ID)
		if err != nil {
			return err
		}
		n := fx.node
		n.Maintenance, n.State = true, model.NodeMaintenance
		if o.Data, err = json.Marshal(n); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	}))
	_, tk = fx.create(t, "stale", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, "the view built before the change still places")

	fx.flow.Lead(ctx, false)
	_, tk = fx.create(t, "after", model.Limits{})
	require.Equal(t, store.TaskFailed, tk.State)
	require.Equal(t, virtplane.ErrResourceExhausted.Error(), tk.ErrorClass, tk.Error)

	// Taking the lead over forgets everything, and reads the same.
	fx.flow.Lead(ctx, true)
	_, tk = fx.create(t, "taken", model.Limits{})
	require.Equal(t, store.TaskFailed, tk.State)
}
