// Package vmmtest is the conformance suite of vmm.Driver: one set of tests
// that the fake and every real driver pass, so that code written against the
// fake behaves the same against libvirt or LXD. Capabilities a driver does
// not implement are skipped; everything it implements is tested.
//
// The suite keeps the number of guest boots small (one machine goes through
// the whole life cycle in order), because real boots under software
// emulation cost seconds each.
//
// Example:
//
//	func TestConformance(t *testing.T) {
//		vmmtest.Run(t, func(t *testing.T) vmmtest.Harness {
//			d := fake.New()
//			return vmmtest.Harness{
//				Driver: d,
//				Spec: func(t *testing.T, name string) vmm.Spec {
//					return vmm.Spec{Name: name, VCPUs: 1, MemoryMiB: 128}
//				},
//			}
//		})
//	}
package vmmtest
