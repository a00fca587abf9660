package fleet

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// regionsCSV is a copy of the inter-region RTT table (region_a,region_b,rtt_ms), so the
// fleet never reads files outside the module at run time.
//
//go:embed regions.csv
var regionsCSV string

// pair is an unordered pair of regions, stored with a < b.
type pair struct{ a, b string }

func newPair(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a: a, b: b}
}

// rttTable parses the embedded CSV. It returns an error rather than panicking so a bad
// edit of the file shows up as a Start error that names the line.
func rttTable() (map[pair]time.Duration, error) {
	var lines []string
	for line := range strings.Lines(regionsCSV) {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			lines = append(lines, t)
		}
	}
	rows, err := csv.NewReader(strings.NewReader(strings.Join(lines, "\n"))).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("fleet: regions.csv: %w", err)
	}
	out := make(map[pair]time.Duration, len(rows))
	for i, row := range rows {
		if i == 0 && len(row) > 0 && row[0] == "region_a" {
			continue // header
		}
		if len(row) != 3 {
			return nil, fmt.Errorf("fleet: regions.csv row %d: want 3 fields, got %d", i+1, len(row))
		}
		ms, err := strconv.Atoi(row[2])
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("fleet: regions.csv row %d: rtt_ms %q is not a positive integer", i+1, row[2])
		}
		out[newPair(row[0], row[1])] = time.Duration(ms) * time.Millisecond
	}
	return out, nil
}
