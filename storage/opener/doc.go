// Package opener opens storage pools from a declarative spec: a driver
// name, a location (Path) and the driver's options, the way an operator
// writes a cluster storage ("lvm", "vgdata", thin_pool=tp0). Drivers are
// registered in a Registry, not chosen by switches; the node agent opens the
// pools a controller asks for through one, and so does the daemon for the
// nodes whose storage is on its own host.
//
// Validate checks a spec without touching the backend (the driver is
// known, the path has the driver's form, every option is one the driver
// reads); Open validates and opens. Errors about a spec are *SpecError,
// naming the field ("driver", "path", "options.device") and wrapping a
// virtplane class, so an API can point at the field the operator got wrong.
//
//	reg, err := opener.New(opener.Builtin()...)
//	pool, err := reg.Open(ctx, opener.Spec{Name: "fast", Driver: "lvm", Path: "vgdata",
//		Options: map[string]string{"thin_pool": "tp0"}}, storage.LocalExecutor{})
package opener
