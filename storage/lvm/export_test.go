package lvm

// ParseLVs exposes the report parser to the fuzz target.
func ParseLVs(b []byte) ([]lv, error) { return parseLVs(b) }
