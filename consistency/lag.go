package consistency

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// HeaderReplicaLag is set by the app on responses (and its watermark pull endpoint):
// how far its replica is behind each origin region, by the origin's clock — the age of
// the newest point in the origin's history the replica is known to have everything up
// to. Databases expose it (PostgreSQL's replay_lag, MySQL's Seconds_Behind_Source); a
// replication stream with heartbeats gives it even while an origin writes nothing.
// Bounded-staleness routing relies on it (see ReplicaLag).
const HeaderReplicaLag = "geode-replica-lag"

// MaxReplicaLag is the largest lag a report may carry; more is reported as this.
const MaxReplicaLag = 24 * time.Hour

// ReplicaLag is a replica's lag behind each origin region. Its text form is a
// comma-separated list of origin=milliseconds, sorted by origin, for example
// "eu-west=12,us-east=1840". An origin not listed is one the replica knows nothing of.
type ReplicaLag map[string]time.Duration

// String returns the wire form.
func (l ReplicaLag) String() string {
	origins := make([]string, 0, len(l))
	for o := range l {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	var b strings.Builder
	for i, o := range origins {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(o)
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(min(l[o], MaxReplicaLag).Milliseconds(), 10))
	}
	return b.String()
}

// ParseReplicaLag parses the wire form written by ReplicaLag.String. An empty string is
// an empty report. Errors name the entry: an origin without a name or listed twice, a
// lag that is not a whole number of milliseconds in [0, MaxReplicaLag].
func ParseReplicaLag(s string) (ReplicaLag, error) {
	l := ReplicaLag{}
	if strings.TrimSpace(s) == "" {
		return l, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		origin, ms, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || origin == "" {
			return nil, fmt.Errorf("replica lag %q: want origin=milliseconds", part)
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 || n > MaxReplicaLag.Milliseconds() {
			return nil, fmt.Errorf("replica lag %q: %q is not a number of milliseconds in [0, %d]", part, ms, MaxReplicaLag.Milliseconds())
		}
		if _, dup := l[origin]; dup {
			return nil, fmt.Errorf("replica lag: origin %q listed twice", origin)
		}
		l[origin] = time.Duration(n) * time.Millisecond
	}
	return l, nil
}
