package libvirt

import "context"

// CountElements exposes countElements to the external tests.
var CountElements = countElements

// MigratingOut exposes migratingOut to the external tests.
func (d *Driver) MigratingOut(ctx context.Context, name string) (bool, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return false, err
	}
	return d.migratingOut(ctx, dom)
}
