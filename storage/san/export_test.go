package san

// ParseTargetLUNs exposes the tgtadm parser to the fuzz target: LUN numbers.
func ParseTargetLUNs(b []byte, tid int) ([]int, error) {
	luns, err := parseTargetLUNs(b, tid)
	var out []int
	for _, l := range luns {
		out = append(out, l.number)
	}
	return out, err
}
