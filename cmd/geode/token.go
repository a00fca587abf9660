package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geodemesh/geode/consistency"
)

const tokenUsage = `Usage:
  geode token decode [--keys FILE] [--json] [--now RFC3339] TOKEN
        print a session token's contents; with --keys, also verify it (exit 1 if
        it does not verify); without, the signature is not checked
  geode token new --keys FILE [--region R] [--ttl 24h] [--session ID] [--version origin:epoch:seq]...
        mint a signed session token (demos and tests)
`

// runToken implements "geode token": operator verbs for session tokens.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_ = ctx // both verbs are short and local
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return errUsage
	}
	switch args[0] {
	case "decode":
		return runTokenDecode(args[1:], stdout, stderr)
	case "new":
		return runTokenNew(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, tokenUsage)
		return nil
	}
	return tokenUsageError(stderr, "unknown verb %q (want decode or new)", args[0])
}

// tokenUsageError reports bad usage on stderr and returns an error that names the
// problem and still counts as a usage error (exit code 2).
func tokenUsageError(stderr io.Writer, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(stderr, "geode token: %s\n\n%s", msg, tokenUsage)
	return fmt.Errorf("%w: %s", errUsage, msg)
}

// parseInterleaved parses flags that may come before or after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// versionsFlag collects repeated --version origin:epoch:seq flags.
type versionsFlag []consistency.Version

func (v *versionsFlag) String() string { return fmt.Sprint([]consistency.Version(*v)) }

func (v *versionsFlag) Set(s string) error {
	x, err := consistency.ParseVersion(s)
	if err != nil {
		return err
	}
	*v = append(*v, x)
	return nil
}

func loadKeyRing(path string) (*consistency.KeyRing, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--keys: %w", err)
	}
	kr, err := consistency.ParseKeyRing(data)
	if err != nil {
		return nil, fmt.Errorf("--keys %s: %w", path, err)
	}
	return kr, nil
}

func runTokenDecode(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode token decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", "", "key `file` (YAML) to verify the token with")
	asJSON := fs.Bool("json", false, "print JSON")
	nowFlag := fs.String("now", "", "check expiry and keys as of this `time` (RFC 3339; default: now)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	if len(pos) != 1 {
		return tokenUsageError(stderr, "decode: want exactly one TOKEN argument, got %d", len(pos))
	}
	now := time.Now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return tokenUsageError(stderr, "--now: %q is not an RFC 3339 time", *nowFlag)
		}
	}
	var kr *consistency.KeyRing
	if *keys != "" {
		if kr, err = loadKeyRing(*keys); err != nil {
			return err
		}
	}

	s := strings.TrimSpace(pos[0])
	tok, keyID, decodeErr := consistency.Decode(s)
	if decodeErr != nil {
		return fmt.Errorf("token decode: %w", decodeErr)
	}
	verdict, verifyErr := "not checked (no --keys)", error(nil)
	if kr != nil {
		if _, verifyErr = kr.Verify(s, now); verifyErr == nil {
			verdict = "verified with key " + keyID
		} else {
			verdict = fmt.Sprintf("NOT VERIFIED: %s (%v)", consistency.Cause(verifyErr), verifyErr)
		}
	}
	if *asJSON {
		err = printTokenJSON(stdout, tok, keyID, kr != nil, verifyErr)
	} else {
		err = printToken(stdout, tok, keyID, verdict, now)
	}
	if err != nil {
		return err
	}
	if verifyErr != nil {
		return fmt.Errorf("token not verified: %s", consistency.Cause(verifyErr))
	}
	return nil
}

func fmtTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
}

func printToken(w io.Writer, tok consistency.Token, keyID, verdict string, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "key id\t%s\n", keyID)
	fmt.Fprintf(tw, "session id\t%s\n", tok.SessionID)
	if tok.Region == "" {
		fmt.Fprintf(tw, "sticky region\t-\n")
	} else {
		fmt.Fprintf(tw, "sticky region\t%s until %s\n", tok.Region, fmtTime(tok.StickyUntil, now))
	}
	fmt.Fprintf(tw, "issued\t%s\n", fmtTime(tok.Issued, now))
	fmt.Fprintf(tw, "expires\t%s\n", fmtTime(tok.Expires, now))
	if len(tok.Vector) == 0 {
		fmt.Fprintf(tw, "vector\t-\n")
	}
	for i, v := range tok.Vector {
		label := ""
		if i == 0 {
			label = "vector"
		}
		fmt.Fprintf(tw, "%s\t%s\tepoch %d\tseq %d\n", label, v.Origin, v.Epoch, v.Seq)
	}
	if len(tok.Pins) == 0 {
		fmt.Fprintf(tw, "pins\t-\n")
	}
	for i, p := range tok.Pins {
		label := ""
		if i == 0 {
			label = "pins"
		}
		fmt.Fprintf(tw, "%s\t%s\t-> %s\tuntil %s\n", label, p.Service, p.Region, fmtTime(p.Until, now))
	}
	fmt.Fprintf(tw, "signature\t%s\n", verdict)
	return tw.Flush()
}

type tokenJSON struct {
	KeyID       string        `json:"key_id"`
	SessionID   string        `json:"session_id"`
	Region      string        `json:"sticky_region,omitempty"`
	StickyUntil *time.Time    `json:"sticky_until,omitempty"`
	Issued      time.Time     `json:"issued"`
	Expires     time.Time     `json:"expires"`
	Vector      []versionJSON `json:"vector"`
	Pins        []pinJSON     `json:"pins"`
	Verified    *bool         `json:"verified,omitempty"` // absent: not checked
	Cause       string        `json:"cause,omitempty"`
	Error       string        `json:"error,omitempty"`
}

type versionJSON struct {
	Origin string `json:"origin"`
	Epoch  uint64 `json:"epoch"`
	Seq    uint64 `json:"seq"`
}

type pinJSON struct {
	Service string    `json:"service"`
	Region  string    `json:"region"`
	Until   time.Time `json:"until"`
}

func printTokenJSON(w io.Writer, tok consistency.Token, keyID string, checked bool, verifyErr error) error {
	out := tokenJSON{KeyID: keyID, SessionID: tok.SessionID, Region: tok.Region, Issued: tok.Issued, Expires: tok.Expires,
		Vector: []versionJSON{}, Pins: []pinJSON{}}
	if !tok.StickyUntil.IsZero() {
		out.StickyUntil = &tok.StickyUntil
	}
	for _, v := range tok.Vector {
		out.Vector = append(out.Vector, versionJSON{Origin: v.Origin, Epoch: v.Epoch, Seq: v.Seq})
	}
	for _, p := range tok.Pins {
		out.Pins = append(out.Pins, pinJSON(p))
	}
	if checked {
		ok := verifyErr == nil
		out.Verified = &ok
		if !ok {
			out.Cause, out.Error = consistency.Cause(verifyErr), verifyErr.Error()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func runTokenNew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode token new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", "", "key `file` (YAML) to sign with (required)")
	region := fs.String("region", "", "sticky `region` (sticky until the token expires)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	session := fs.String("session", "", "session `id` (default: a new random one)")
	var versions versionsFlag
	fs.Var(&versions, "version", "add `origin:epoch:seq` to the version vector (repeatable)")
	nowFlag := fs.String("now", "", "sign as of this `time` (RFC 3339; default: now)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	switch {
	case len(pos) != 0:
		return tokenUsageError(stderr, "new: unexpected argument %q", pos[0])
	case *keys == "":
		return tokenUsageError(stderr, "new: --keys is required")
	case *ttl <= 0:
		return tokenUsageError(stderr, "--ttl: must be positive, got %s", *ttl)
	}
	now := time.Now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return tokenUsageError(stderr, "--now: %q is not an RFC 3339 time", *nowFlag)
		}
	}
	kr, err := loadKeyRing(*keys)
	if err != nil {
		return err
	}
	tok := consistency.Token{SessionID: *session, Issued: now, Expires: now.Add(*ttl)}
	if tok.SessionID == "" {
		tok.SessionID = consistency.NewSessionID()
	}
	if *region != "" {
		tok.Region, tok.StickyUntil = *region, tok.Expires
	}
	for _, v := range versions {
		tok.Vector = tok.Vector.Merge(v)
	}
	s, err := kr.Sign(tok, now)
	if err != nil {
		if errors.Is(err, consistency.ErrTooLarge) {
			return fmt.Errorf("token new: a flag value exceeds the token limits: %w", err)
		}
		return fmt.Errorf("token new: %w", err)
	}
	fmt.Fprintln(stdout, s)
	return nil
}
