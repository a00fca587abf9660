package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const regionUsage = "usage: geode region drain|fence|down|restore REGION [--admin ADDR] [--json]"

// runRegion runs `geode region drain|fence|down|restore REGION [--admin ADDR] [--json]`:
// an operator override of a region's state on the control plane (POST
// /regions/{region}/{action}); restore clears it.
func runRegion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode region", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, regionUsage)
		fmt.Fprintln(stderr, "  drain: serve only when no healthy region is left; down: no traffic (failed); fence: no traffic (isolated); restore: back to the state the manifests give")
		fs.PrintDefaults()
	}
	admin := fs.String("admin", defaultAdmin, "control plane admin `address` (host:port or http://host:port)")
	asJSON := fs.Bool("json", false, "print the control plane's answer as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	// Flags may come before, between or after the action and the region.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "geode region: an action and a region are required")
		fs.Usage()
		return errUsage
	}
	action := pos[0]
	switch action {
	case "drain", "fence", "down", "restore":
	default:
		fmt.Fprintf(stderr, "geode region: unknown action %q: want drain, fence, down or restore\n", action)
		fs.Usage()
		return fmt.Errorf("%w: unknown action %q", errUsage, action)
	}
	if len(pos) != 2 || pos[1] == "" {
		fmt.Fprintf(stderr, "geode region %s: exactly one REGION is required (got %d arguments)\n", action, len(pos)-1)
		fs.Usage()
		return errUsage
	}
	region := pos[1]
	var out struct {
		Region           string            `json:"region"`
		State            string            `json:"state"`
		ModelVersion     string            `json:"model_version"`
		SnapshotVersions map[string]string `json:"snapshot_versions"`
	}
	err := adminCall(ctx, *timeout, http.MethodPost, *admin, "/regions/"+url.PathEscape(region)+"/"+action, &out)
	switch {
	case isAdminStatus(err, http.StatusNotFound):
		return fmt.Errorf("region %q: the control plane at %s does not know it (%w)", region, *admin, err)
	case err != nil:
		return fmt.Errorf("region %s %q: %w", action, region, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var snaps []string
	for _, r := range slices.Sorted(maps.Keys(out.SnapshotVersions)) {
		snaps = append(snaps, r+"="+shortVersion(out.SnapshotVersions[r]))
	}
	_, err = fmt.Fprintf(stdout, "region %s: %s (model %s; snapshots %s)\n", out.Region, out.State, shortVersion(out.ModelVersion), strings.Join(snaps, " "))
	return err
}
