package consistency

import (
	"fmt"
	"strings"
	"time"
)

// LevelKind names a consistency level without its parameter.
type LevelKind uint8

// The consistency levels, weakest first. The zero LevelKind is Eventual; a
// configuration layer that wants another default must apply it itself.
const (
	// Eventual reads may be served by any region, however far behind it is.
	Eventual LevelKind = iota
	// Session gives read-your-writes and monotonic reads within one session token.
	Session
	// BoundedStaleness reads may lag the home region by at most Level.Staleness.
	BoundedStaleness
	// Strong reads and writes are served by the data's home region only.
	Strong
)

// String returns the level's wire name ("bounded-staleness" without its duration).
func (k LevelKind) String() string {
	switch k {
	case Eventual:
		return "eventual"
	case Session:
		return "session"
	case BoundedStaleness:
		return "bounded-staleness"
	case Strong:
		return "strong"
	}
	return fmt.Sprintf("LevelKind(%d)", uint8(k))
}

// Level is a consistency level: its kind and, for BoundedStaleness only, the
// staleness bound. Its text form is "eventual", "session", "strong" or
// "bounded-staleness=<duration>" (for example "bounded-staleness=250ms").
type Level struct {
	Kind LevelKind
	// Staleness is the bound of a BoundedStaleness level; zero for other kinds.
	Staleness time.Duration
}

const validLevels = `eventual, session, bounded-staleness=<duration>, strong`

// ParseLevel parses the text form of a level. Surrounding spaces are ignored;
// names are case-sensitive. The duration of bounded-staleness must be positive.
func ParseLevel(s string) (Level, error) {
	t := strings.TrimSpace(s)
	switch t {
	case "eventual":
		return Level{Kind: Eventual}, nil
	case "session":
		return Level{Kind: Session}, nil
	case "strong":
		return Level{Kind: Strong}, nil
	}
	name, arg, hasArg := strings.Cut(t, "=")
	if name != "bounded-staleness" {
		return Level{}, fmt.Errorf("consistency level %q: want one of %s", s, validLevels)
	}
	if !hasArg || arg == "" {
		return Level{}, fmt.Errorf("consistency level %q: bounded-staleness needs a duration, e.g. bounded-staleness=250ms", s)
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		return Level{}, fmt.Errorf("consistency level %q: bad staleness duration %q (want e.g. 250ms, 2s)", s, arg)
	}
	if d <= 0 {
		return Level{}, fmt.Errorf("consistency level %q: staleness must be positive", s)
	}
	return Level{Kind: BoundedStaleness, Staleness: d}, nil
}

// String returns the text form; ParseLevel(l.String()) == l for every valid level.
func (l Level) String() string {
	if l.Kind == BoundedStaleness {
		return "bounded-staleness=" + l.Staleness.String()
	}
	return l.Kind.String()
}

// Validate reports whether l is a level ParseLevel could have produced.
func (l Level) Validate() error {
	switch l.Kind {
	case Eventual, Session, Strong:
		if l.Staleness != 0 {
			return fmt.Errorf("consistency level %s: staleness applies to bounded-staleness only", l.Kind)
		}
		return nil
	case BoundedStaleness:
		if l.Staleness <= 0 {
			return fmt.Errorf("consistency level bounded-staleness: staleness must be positive")
		}
		return nil
	}
	return fmt.Errorf("consistency level: unknown kind %d", uint8(l.Kind))
}

// MarshalText implements encoding.TextMarshaler (used by YAML and JSON encoders).
func (l Level) MarshalText() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseLevel.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
