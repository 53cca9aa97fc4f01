//go:build ceph

package ceph

// SetFault makes the multi-step operations of p call f before each step.
func SetFault(p *Pool, f func(step string) error) { p.fault = f }
