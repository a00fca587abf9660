package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/geodemesh/geode/controlplane/server"
)

// defaultAdmin is the control plane's default admin address (geode controlplane --admin).
const defaultAdmin = "127.0.0.1:18001"

// runStatus runs `geode status [--admin ADDR] [--json]`: the control plane's connected
// xDS clients, like istioctl proxy-status.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", defaultAdmin, "control plane admin `address` (host:port or http://host:port)")
	asJSON := fs.Bool("json", false, "print the control plane's /status JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "geode status: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	var st server.Status
	if err := adminCall(ctx, *timeout, http.MethodGet, *admin, "/status", &st); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printStatus(stdout, st)
}

// typeColumns are the xDS types shown, in this order; other types seen get a column
// after them, named by the last part of their type URL.
func typeColumns(st server.Status) []string {
	known := []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.SecretType}
	var other []string
	for _, c := range st.Clients {
		for _, m := range []map[string]string{c.Sent, c.Acked} {
			for t := range m {
				if !slices.Contains(known, t) && !slices.Contains(other, t) {
					other = append(other, t)
				}
			}
		}
	}
	slices.Sort(other)
	return append(known, other...)
}

func typeName(typeURL string) string {
	switch typeURL {
	case resource.ListenerType:
		return "LDS"
	case resource.RouteType:
		return "RDS"
	case resource.ClusterType:
		return "CDS"
	case resource.EndpointType:
		return "EDS"
	case resource.SecretType:
		return "SDS"
	}
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

// syncState is a client's state for one type: SYNCED (it ACKed the last version sent),
// NACKED (it rejected the last version sent), STALE (the last version sent is not ACKed
// yet), or NOT SENT; with the short ACKed version.
func syncState(c server.ClientStatus, typeURL string) string {
	sent, acked := c.Sent[typeURL], c.Acked[typeURL]
	var state string
	switch n := c.LastNACK; {
	case sent == "" && acked == "":
		return "NOT SENT"
	case sent != "" && acked == sent:
		state = "SYNCED"
	case n != nil && n.TypeURL == typeURL && (n.Version == sent || n.Version == ""):
		state = "NACKED"
	default:
		state = "STALE"
	}
	if acked == "" {
		return state
	}
	return fmt.Sprintf("%s (%s)", state, shortVersion(acked))
}

func shortVersion(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

func printStatus(w io.Writer, st server.Status) error {
	types := typeColumns(st)
	// Only columns some client uses, but always LDS..EDS, as proxy-status does.
	var cols []string
	for i, t := range types {
		used := i < 4
		for _, c := range st.Clients {
			used = used || c.Sent[t] != "" || c.Acked[t] != ""
		}
		if used {
			cols = append(cols, t)
		}
	}
	registered := slices.ContainsFunc(st.Clients, func(c server.ClientStatus) bool { return c.Registered != "" })
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := []string{"NODE", "REGION", "PROTOCOL"}
	for _, t := range cols {
		head = append(head, typeName(t))
	}
	if registered {
		head = append(head, "REGISTERED")
	}
	head = append(head, "LAST NACK")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, c := range st.Clients {
		node := c.NodeID
		if node == "" {
			node = fmt.Sprintf("(stream %d)", c.Stream)
		}
		row := []string{node, orDash(c.Region), c.Protocol}
		for _, t := range cols {
			row = append(row, syncState(c, t))
		}
		if registered {
			row = append(row, orDash(c.Registered))
		}
		nack := "-"
		if n := c.LastNACK; n != nil {
			nack = fmt.Sprintf("%s %s: %s", typeName(n.TypeURL), shortVersion(n.Version), oneLine(n.Error))
		}
		row = append(row, nack)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%d clients; %d streams refused, %d NACKs since start\n", len(st.Clients), st.Refused, st.NACKs); err != nil {
		return err
	}
	if r := st.Registrations; r.Active > 0 || r.Registered > 0 || r.Refused > 0 {
		var why []string
		for _, reason := range slices.Sorted(maps.Keys(r.RefusedByReason)) {
			why = append(why, fmt.Sprintf("%s %d", reason, r.RefusedByReason[reason]))
		}
		line := fmt.Sprintf("%d endpoints registered (at most %d); %d registrations refused", r.Active, r.Max, r.Refused)
		if len(why) > 0 {
			line += " (" + strings.Join(why, ", ") + ")"
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// adminCall sends a request to the control plane's admin API and decodes its JSON
// answer into out. A non-2xx answer is an *adminError carrying the server's message.
func adminCall(ctx context.Context, timeout time.Duration, method, admin, path string, out any) error {
	base := admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("--admin %q: %w", admin, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control plane admin API at %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control plane admin API at %s: reading %s %s: %w", admin, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("control plane admin API at %s: %s %s: %w", admin, method, path, &adminError{Code: resp.StatusCode, Msg: msg})
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("control plane admin API at %s: %s %s: decoding the answer: %w", admin, method, path, err)
	}
	return nil
}

// adminError is a non-2xx answer of the admin API.
type adminError struct {
	Code int
	Msg  string
}

func (e *adminError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

func isAdminStatus(err error, code int) bool {
	var ae *adminError
	return errors.As(err, &ae) && ae.Code == code
}
