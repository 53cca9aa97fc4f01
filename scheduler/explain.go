package scheduler

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/virtplane/virtplane"
)

// PlacementError says why no node could take a request. It wraps
// virtplane.ErrResourceExhausted.
type PlacementError struct {
	// Cluster is a cluster-wide reason ("cluster: 100/100 VMs (max per
	// cluster)"); when set, Refusals is empty.
	Cluster string
	// Refusals lists every node considered and why it was refused, in
	// strategy order. A pinned request lists only its node.
	Refusals []Refusal
}

// Refusal is why one node could not take a request.
type Refusal struct {
	Node    string
	Reasons []string
}

func (r Refusal) String() string { return r.Node + ": " + strings.Join(r.Reasons, ", ") }

// maxListed bounds the refusals Error spells out; Refusals keeps them all.
const maxListed = 10

func (e *PlacementError) Error() string {
	var sb strings.Builder
	sb.WriteString("no node can take the request")
	if e.Cluster != "" {
		sb.WriteString(": " + e.Cluster)
	}
	for i, r := range e.Refusals {
		if i == maxListed {
			fmt.Fprintf(&sb, "; … and %d more nodes", len(e.Refusals)-maxListed)
			break
		}
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString(r.String())
	}
	sb.WriteString(": " + virtplane.ErrResourceExhausted.Error())
	return sb.String()
}

// Unwrap makes errors.Is(err, virtplane.ErrResourceExhausted) hold.
func (e *PlacementError) Unwrap() error { return virtplane.ErrResourceExhausted }

// explain builds the PlacementError for q with a full scan; it runs only
// when a placement fails.
func (s *Scheduler) explain(q *query) error {
	e := &PlacementError{}
	if s.clusterFull() {
		e.Cluster = fmt.Sprintf("cluster: %d/%d VMs (max per cluster)", s.totalVMs, s.settings.MaxVMs)
		return e
	}
	if q.pinned >= 0 {
		e.Refusals = append(e.Refusals, Refusal{Node: s.nodes[q.pinned].id, Reasons: s.reasons(q.pinned, q)})
		return e
	}
	for _, idx := range s.byRank {
		if rs := s.reasons(idx, q); len(rs) > 0 {
			e.Refusals = append(e.Refusals, Refusal{Node: s.nodes[idx].id, Reasons: rs})
		}
	}
	return e
}

const gib = 1 << 30

func fmtGiB(b int64) string {
	return strconv.FormatFloat(math.Round(float64(b)/gib*100)/100, 'f', -1, 64)
}

func fmtRatio(r float64) string {
	s := strconv.FormatFloat(r, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// reasons lists every rule node idx breaks for q; empty when it fits.
func (s *Scheduler) reasons(idx int32, q *query) []string {
	n := &s.nodes[idx]
	var rs []string
	if idx == q.exclude {
		rs = append(rs, "is the node being vacated")
	}
	switch n.state {
	case NodeMaintenance:
		rs = append(rs, "in maintenance")
	case NodeOffline:
		rs = append(rs, "offline")
	}
	for _, t := range q.req.RequireTags {
		if i, ok := s.tagIdx[t]; !ok || n.tags[i/64]&(1<<(i%64)) == 0 {
			rs = append(rs, fmt.Sprintf("missing tag %q", t))
		}
	}
	for _, t := range q.req.ForbidTags {
		if i, ok := s.tagIdx[t]; ok && n.tags[i/64]&(1<<(i%64)) != 0 {
			rs = append(rs, fmt.Sprintf("has forbidden tag %q", t))
		}
	}
	if n.slots() < 1 {
		rs = append(rs, fmt.Sprintf("VMs %d/%d (max per node)", n.vms, n.maxVMs))
	}
	if n.cpuUsed+q.cpu > n.cpuCap {
		rs = append(rs, fmt.Sprintf("CPU %d/%d vCPUs at ratio %s, need %d", n.cpuUsed, n.cpuCap, fmtRatio(n.cpuR), q.cpu))
	}
	if n.ramUsed+q.ram > n.ramCap {
		rs = append(rs, fmt.Sprintf("RAM %s/%s GiB at ratio %s, need %s GiB", fmtGiB(n.ramUsed), fmtGiB(n.ramCap), fmtRatio(n.ramR), fmtGiB(q.ram)))
	}
	if q.hard && s.hostsGroup(idx, q.group) {
		rs = append(rs, fmt.Sprintf("hosts a member of anti-affinity group %q", q.group))
	}
	if r := s.diskReason(n, q); r != "" {
		rs = append(rs, r)
	}
	return rs
}

// diskReason replays fitsDisks and names the first disk that does not fit.
func (s *Scheduler) diskReason(n *node, q *query) string {
	assigned := make([]int64, len(n.pools))
	for d, disk := range q.disks {
		best, bestFree := -1, int64(-1)
		for pi := range n.pools {
			p := &n.pools[pi]
			if disk.unknown || !p.tags.contains(disk.tags) {
				continue
			}
			if free := p.cap - p.used - assigned[pi]; free > bestFree {
				best, bestFree = pi, free
			}
		}
		if best < 0 {
			return fmt.Sprintf("disk %d (%s GiB): no pool with tags %v", d, fmtGiB(disk.size), q.req.Disks[d].Tags)
		}
		if bestFree < disk.size {
			p := &n.pools[best]
			return fmt.Sprintf("disk %d (%s GiB): pool %q %s/%s GiB at ratio %s", d, fmtGiB(disk.size), p.name,
				fmtGiB(p.used+assigned[best]), fmtGiB(p.cap), fmtRatio(p.ratio))
		}
		assigned[best] += disk.size
	}
	return ""
}
