package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
)

// taskTimeout bounds how long an apply waits for one task.
const taskTimeout = 30 * time.Minute

// base is what every resource and data source holds: the client.
type base struct{ c *client.Client }

func (b *base) configure(data any, diags *diag.Diagnostics) {
	if data == nil { // not configured yet (validation)
		return
	}
	d, ok := data.(*deps)
	if !ok {
		diags.AddError("unexpected provider data", fmt.Sprintf("%T", data))
		return
	}
	b.c = d.c
}

func (b *base) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	b.configure(req.ProviderData, &resp.Diagnostics)
}

// fieldPath maps the API's field location ("body.memory_mib",
// "body.blocks[0].range") to the attribute of the same name.
var bodyField = regexp.MustCompile(`^body\.([a-z_]+)`)

// addError reports an API error; one about a field is reported against
// the attribute of that name.
func addError(diags *diag.Diagnostics, summary string, err error) {
	var p *client.Problem
	if errors.As(err, &p) {
		if m := bodyField.FindStringSubmatch(p.Field()); m != nil {
			diags.AddAttributeError(path.Root(m[1]), summary, err.Error())
			return
		}
	}
	diags.AddError(summary, err.Error())
}

// wait follows a task to its end; a failed task is its error.
func (b *base) wait(ctx context.Context, tv api.TaskView) error {
	ctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	return b.c.Task(tv).Wait(ctx)
}

// retryConflict repeats f while it fails with ErrConflict (a node whose VMs
// are being deleted by the same apply), up to the task timeout.
func retryConflict(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	for {
		err := f()
		if err == nil || !errors.Is(err, virtplane.ErrConflict) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func notFound(err error) bool { return errors.Is(err, virtplane.ErrNotFound) }

// strOrNull is s, or null when empty.
func strOrNull(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func stringList(l []string) []types.String {
	out := make([]types.String, 0, len(l))
	for _, s := range l {
		out = append(out, types.StringValue(s))
	}
	return out
}

func plainStrings(l []types.String) []string {
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, s.ValueString())
	}
	return out
}

// namePattern is the daemon's rule for object names (DNS labels).
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

const nameRule = "lower-case letters, digits and inner dashes, at most 63"

// sshKey is the daemon's check of an OpenSSH public key: one line that
// starts with the key type.
var sshKey = regexp.MustCompile(`^(ssh-|ecdsa-)[^\r\n]*$`)

// listValue is a known list of strings.
func listValue(l []string) types.List {
	v, _ := types.ListValueFrom(context.Background(), types.StringType, l)
	return v
}

// keepKnownState keeps an unconfigured computed string at its prior value
// once it has one. Unlike stringplanmodifier.UseStateForUnknown, a null
// prior value (an element new in a nested list: no state yet) leaves the
// plan unknown, so that the value apply fills in is no surprise to
// Terraform.
func keepKnownState() planmodifier.String { return keepKnown{} }

type keepKnown struct{}

func (keepKnown) Description(context.Context) string {
	return "Once known, the value in state does not change unless configured."
}

func (k keepKnown) MarkdownDescription(ctx context.Context) string { return k.Description(ctx) }

func (keepKnown) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || req.StateValue.IsUnknown() || !req.PlanValue.IsUnknown() || req.ConfigValue.IsUnknown() {
		return
	}
	resp.PlanValue = req.StateValue
}
