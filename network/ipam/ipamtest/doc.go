// Package ipamtest is the conformance suite of ipam.Store: the in-memory
// store and every database store (the daemon's SQLite and PostgreSQL
// stores) pass it.
//
//	func TestMyStore(t *testing.T) {
//		ipamtest.Run(t, func(t *testing.T) ipam.Store { return newMyStore(t) })
//	}
//
// The suite checks the Store contract directly (transactions, versions,
// uniqueness, paging, owner index) and through an ipam.Manager (next-free
// and explicit allocation, cooldown, prefix delegation, block removal, two
// managers sharing one store, and 10,000 goroutines allocating at once).
package ipamtest
