package lvm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
)

// lv is one row of `lvs --reportformat json --units b --nosuffix`.
type lv struct {
	Name   string
	Size   int64
	Attr   string
	Tags   []string
	Origin string
	Pool   string // thin pool, empty for thick LVs
	Time   time.Time
}

// lvsFields are the columns lvs reports, in the order parseLVs expects none.
const lvsFields = "lv_name,lv_size,lv_attr,lv_tags,origin,pool_lv,lv_time"

// parseLVs decodes an lvs JSON report.
func parseLVs(out []byte) ([]lv, error) {
	var rep struct {
		Report []struct {
			LV []map[string]string `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("lvs report: %w: %v", virtplane.ErrUnavailable, err)
	}
	var lvs []lv
	for _, r := range rep.Report {
		for _, row := range r.LV {
			size, err := strconv.ParseInt(row["lv_size"], 10, 64)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("lvs report: size %q of %q: %w", row["lv_size"], row["lv_name"], virtplane.ErrUnavailable)
			}
			l := lv{Name: row["lv_name"], Size: size, Attr: row["lv_attr"], Origin: row["origin"], Pool: row["pool_lv"]}
			if row["lv_tags"] != "" {
				l.Tags = strings.Split(row["lv_tags"], ",")
			}
			if t, err := time.Parse("2006-01-02 15:04:05 -0700", row["lv_time"]); err == nil {
				l.Time = t
			}
			lvs = append(lvs, l)
		}
	}
	return lvs, nil
}

// vg is one row of a vgs JSON report.
type vg struct {
	Size, Free int64
}

func parseVGs(out []byte) ([]vg, error) {
	var rep struct {
		Report []struct {
			VG []map[string]string `json:"vg"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("vgs report: %w: %v", virtplane.ErrUnavailable, err)
	}
	var vgs []vg
	for _, r := range rep.Report {
		for _, row := range r.VG {
			size, err1 := strconv.ParseInt(row["vg_size"], 10, 64)
			free, err2 := strconv.ParseInt(row["vg_free"], 10, 64)
			if err1 != nil || err2 != nil || size < 0 || free < 0 {
				return nil, fmt.Errorf("vgs report: %q: %w", row, virtplane.ErrUnavailable)
			}
			vgs = append(vgs, vg{Size: size, Free: free})
		}
	}
	return vgs, nil
}
