package daemon_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
)

// TestDomainTemplates: versions, the cluster's default, a VM's choice, and
// overrides refused with the path of the bad element.
func TestDomainTemplates(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done(t, e.alice, e.aliceTask, nil)
	pools := e.srv.DataDir() + "/images"
	for _, tc := range []struct{ name, xml, path string }{
		{"second devices", `<domain><devices><input type='tablet' bus='usb'/></devices><devices><video><model type='vga'/></video></devices></domain>`, "/domain/devices[2]"},
		{"disk outside the pools", `<domain><devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdb'/></disk></devices></domain>`, "/domain/devices[1]/disk[1]/source"},
		{"unknown element", `<domain><devices><vidoe/></devices></domain>`, "/domain/devices[1]/vidoe[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.CreateTemplate(ctx, api.TemplateBody{Name: "bad", Override: tc.xml})
			p := problemOf(t, err)
			assert.Equal(t, http.StatusUnprocessableEntity, p.Status, p.Error())
			assert.Equal(t, "body.override_xml", p.Field())
			assert.Contains(t, p.Error(), tc.path+":")
		})
	}
	_, err := e.admin.CreateTemplate(ctx, api.TemplateBody{Name: "bad", Video: "matrox"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)

	tpl, err := e.admin.CreateTemplate(ctx, api.TemplateBody{Name: "legacy", Machine: "pc", NICModel: "e1000",
		Override: `<domain><devices><disk type='file' device='disk'><source file='` + pools + `/scratch.raw'/><target dev='vdb'/></disk></devices></domain>`})
	require.NoError(t, err)
	assert.Equal(t, 1, tpl.Version)
	tpl, err = e.admin.UpdateTemplate(ctx, tpl.ID, api.TemplateBody{Name: "legacy", Machine: "pc", NICModel: "rtl8139"})
	require.NoError(t, err)
	assert.Equal(t, 2, tpl.Version, "a change is a new version")
	assert.Empty(t, tpl.Override, "PUT is a full replacement (as the OpenAPI description says): the override left out is gone")
	assert.Equal(t, "rtl8139", tpl.NICModel)

	_, err = e.admin.SetClusterTemplate(ctx, e.cluster.ID, tpl.ID)
	require.NoError(t, err)
	vm, tk, err := e.alice.CreateVM(ctx, e.vmBody("templated"), "")
	done(t, e.alice, tk, err)
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, tpl.ID, vm.TemplateID, "the cluster's template")
	assert.Equal(t, 2, vm.TemplateVersion)
	drv, err := e.srv.Flow.NodeDriver(ctx, e.node.ID)
	require.NoError(t, err)
	d, err := drv.Get(ctx, "vpt-"+vm.ID)
	require.NoError(t, err)
	require.NotNil(t, d.Spec.Template)
	assert.Equal(t, "rtl8139", d.Spec.Template.NICModel, "the hypervisor got the template's values")

	b := e.vmBody("chosen")
	b.TemplateID = e.template.ID
	vm, tk, err = e.alice.CreateVM(ctx, b, "")
	done(t, e.alice, tk, err)
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, e.template.ID, vm.TemplateID, "the VM's own choice wins")
	b = e.vmBody("nope")
	b.TemplateID = "nope"
	_, _, err = e.alice.CreateVM(ctx, b, "")
	assert.Equal(t, "body.template_id", problemOf(t, err).Field())

	err = e.admin.DeleteTemplate(ctx, tpl.ID)
	assert.ErrorIs(t, err, virtplane.ErrConflict, "the cluster uses it")
	_, err = e.admin.SetClusterTemplate(ctx, e.cluster.ID, "")
	require.NoError(t, err)
	require.NoError(t, e.admin.DeleteTemplate(ctx, tpl.ID))
}
