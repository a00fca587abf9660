package api

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// MetadataKey is the filter_metadata key under which geode policy travels on a cluster.
const MetadataKey = "geode"

// SchemaVersion is the version of the policy Struct this package writes and reads.
const SchemaVersion = 1

// Field names of the policy Struct (wire names).
const (
	FieldSchema              = "schema"
	FieldService             = "service"
	FieldProtocol            = "protocol"
	FieldAuthorities         = "authorities"
	FieldConsistency         = "consistency"
	FieldAffinityKey         = "affinity_key"
	FieldHomeRegions         = "home_regions"
	FieldWriteFailover       = "write_failover"
	FieldResidency           = "residency"
	FieldCrossRegionBudget   = "cross_region_budget"
	FieldReplicationLagBound = "replication_lag_bound"
	FieldRegions             = "regions"
)

// Field names of one entry of FieldRegions (wire names).
const (
	FieldRegionName  = "name"
	FieldRegionRTTMs = "rtt_ms"
	FieldRegionState = "state"
	// FieldRegionRampPercent is optional: see Region.RampPercent.
	FieldRegionRampPercent = "ramp_percent"
)

// SessionKeysSecret names the SDS secret (envoy.extensions.transport_sockets.tls.v3.Secret)
// that carries the fleet's session-token key ring: a generic_secret whose inline_bytes
// are the key ring in the key-file format (consistency.ParseKeyRing). The control plane
// always answers for it; no resource means the sidecar uses its own session.keys_file.
const SessionKeysSecret = "geode-session-keys"

// Node metadata fields a geode sidecar sets on its xDS node (wire names): registration
// data for the control plane. NodeRegionKey may stand in for node.locality.region; when
// both are set they must agree.
const (
	NodeRegionKey  = "geode.region"
	NodeServiceKey = "geode.service"
	// NodeAddressKey is host:port of the sidecar's inbound listener.
	NodeAddressKey = "geode.address"
)

// Region is one region of the fleet as the requesting client's region sees it.
type Region struct {
	// Name of the region. Required.
	Name string
	// RTT is the round-trip time from the requesting client's region; zero for that
	// region itself. It travels as a number of milliseconds (fractions allowed).
	RTT time.Duration
	// State: healthy, degraded, draining, down or fenced (the names of
	// affinity.RegionState; the sidecar parses it with affinity.ParseRegionState).
	// Required.
	State string
	// RampPercent, when strictly between 0 and 100, says the region is in a capped ramp
	// of the control plane's health machine (controlplane/health): it takes this percent
	// of the traffic it would take were it healthy, the rest going where it would go
	// were the region not preferred, on the way out (state degraded) and on the way back
	// (state healthy) alike. Zero (absent on the wire) means no ramp.
	RampPercent int
}

// Policy is one service's geode policy as it travels on the wire. The policy strings have
// the syntax of the sidecar config fields and of the geode.io/* Service annotations
// (consistency.ParseLevel, affinity.ParseKeySource, ParseHomeRegions, ParseResidency,
// ParseBudget); the control plane has validated them, and the sidecar parses them again
// with the same parsers. An empty string means "not set" and is omitted on the wire.
type Policy struct {
	// Service is the service (and cluster) name. Required.
	Service string
	// Protocol is http1, http2 or grpc. Required.
	Protocol string
	// Authorities are the Host/:authority values that address the service.
	Authorities []string
	// Consistency: eventual, session, bounded-staleness=<duration>, strong.
	Consistency string
	// AffinityKey: header:NAME, path:/users/{key}/..., grpc:NAME, cookie:NAME, query:NAME.
	AffinityKey string
	// HomeRegions: table=k:region,...;prefix=p:region,...;hash=r1,r2
	HomeRegions string
	// WriteFailover: deny or nearest.
	WriteFailover string
	// Residency: r1,r2;prefix=p:r3|r4
	Residency string
	// CrossRegionBudget: ratio=0.1,min=5,window=10s,mode=enforce
	CrossRegionBudget string
	// ReplicationLagBound is written as a Go duration string ("2s"); zero is omitted.
	ReplicationLagBound time.Duration
	// Regions are every region of the fleet, in the control plane's configuration order,
	// with its RTT from the requesting client's region and its current state, down and
	// fenced regions included. Optional (an empty list is omitted); a geode sidecar
	// needs it, Envoy and grpc-go ignore it. Every cluster sent to one client carries
	// the same list.
	Regions []Region
}

// Encode returns p as the Struct that goes under filter_metadata[MetadataKey].
func Encode(p Policy) (*structpb.Struct, error) {
	if p.Service == "" {
		return nil, errors.New("geode policy: service is required")
	}
	if p.Protocol == "" {
		return nil, fmt.Errorf("geode policy for %q: protocol is required", p.Service)
	}
	f := map[string]*structpb.Value{
		FieldSchema:   structpb.NewNumberValue(SchemaVersion),
		FieldService:  structpb.NewStringValue(p.Service),
		FieldProtocol: structpb.NewStringValue(p.Protocol),
	}
	if len(p.Authorities) > 0 {
		vals := make([]*structpb.Value, len(p.Authorities))
		for i, a := range p.Authorities {
			vals[i] = structpb.NewStringValue(a)
		}
		f[FieldAuthorities] = structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	for name, v := range map[string]string{
		FieldConsistency:       p.Consistency,
		FieldAffinityKey:       p.AffinityKey,
		FieldHomeRegions:       p.HomeRegions,
		FieldWriteFailover:     p.WriteFailover,
		FieldResidency:         p.Residency,
		FieldCrossRegionBudget: p.CrossRegionBudget,
	} {
		if v != "" {
			f[name] = structpb.NewStringValue(v)
		}
	}
	if p.ReplicationLagBound < 0 {
		return nil, fmt.Errorf("geode policy for %q: replication_lag_bound is negative", p.Service)
	}
	if p.ReplicationLagBound > 0 {
		f[FieldReplicationLagBound] = structpb.NewStringValue(p.ReplicationLagBound.String())
	}
	if len(p.Regions) > 0 {
		vals := make([]*structpb.Value, len(p.Regions))
		seen := map[string]bool{}
		for i, r := range p.Regions {
			switch {
			case r.Name == "":
				return nil, fmt.Errorf("geode policy for %q: regions[%d].name is required", p.Service, i)
			case seen[r.Name]:
				return nil, fmt.Errorf("geode policy for %q: regions[%d]: region %q is listed twice", p.Service, i, r.Name)
			case r.RTT < 0:
				return nil, fmt.Errorf("geode policy for %q: regions[%d].rtt_ms is negative", p.Service, i)
			case r.State == "":
				return nil, fmt.Errorf("geode policy for %q: regions[%d].state is required", p.Service, i)
			case r.RampPercent < 0 || r.RampPercent >= 100:
				return nil, fmt.Errorf("geode policy for %q: regions[%d].ramp_percent %d is not in [0,100)", p.Service, i, r.RampPercent)
			}
			seen[r.Name] = true
			rf := map[string]*structpb.Value{
				FieldRegionName:  structpb.NewStringValue(r.Name),
				FieldRegionRTTMs: structpb.NewNumberValue(float64(r.RTT) / float64(time.Millisecond)),
				FieldRegionState: structpb.NewStringValue(r.State),
			}
			if r.RampPercent > 0 {
				rf[FieldRegionRampPercent] = structpb.NewNumberValue(float64(r.RampPercent))
			}
			vals[i] = structpb.NewStructValue(&structpb.Struct{Fields: rf})
		}
		f[FieldRegions] = structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	return &structpb.Struct{Fields: f}, nil
}

// Decode reads a policy Struct. It is strict: an unknown field, a field of the wrong
// type, a missing required field or an unknown schema version is an error that names the
// field. It does not parse the policy strings; the caller does, with the same parsers the
// control plane used.
func Decode(s *structpb.Struct) (Policy, error) {
	var p Policy
	if s == nil {
		return p, errors.New("geode policy: missing")
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("geode policy: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	str := func(field string, v *structpb.Value, dst *string) {
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			bad(field, "must be a string")
			return
		}
		*dst = sv.StringValue
	}
	schemaSeen := false
	for _, name := range sortedKeys(s.GetFields()) {
		v := s.GetFields()[name]
		switch name {
		case FieldSchema:
			n, ok := v.GetKind().(*structpb.Value_NumberValue)
			switch {
			case !ok:
				bad(name, "must be a number")
			case n.NumberValue != SchemaVersion:
				bad(name, "version %v is not supported (this build reads version %d)", n.NumberValue, SchemaVersion)
			default:
				schemaSeen = true
			}
		case FieldService:
			str(name, v, &p.Service)
		case FieldProtocol:
			str(name, v, &p.Protocol)
		case FieldAuthorities:
			l, ok := v.GetKind().(*structpb.Value_ListValue)
			if !ok {
				bad(name, "must be a list of strings")
				continue
			}
			for i, e := range l.ListValue.GetValues() {
				sv, ok := e.GetKind().(*structpb.Value_StringValue)
				if !ok {
					bad(fmt.Sprintf("%s[%d]", name, i), "must be a string")
					continue
				}
				p.Authorities = append(p.Authorities, sv.StringValue)
			}
		case FieldConsistency:
			str(name, v, &p.Consistency)
		case FieldAffinityKey:
			str(name, v, &p.AffinityKey)
		case FieldHomeRegions:
			str(name, v, &p.HomeRegions)
		case FieldWriteFailover:
			str(name, v, &p.WriteFailover)
		case FieldResidency:
			str(name, v, &p.Residency)
		case FieldCrossRegionBudget:
			str(name, v, &p.CrossRegionBudget)
		case FieldReplicationLagBound:
			var d string
			str(name, v, &d)
			if d == "" {
				continue
			}
			lag, err := time.ParseDuration(d)
			if err != nil || lag <= 0 {
				bad(name, "%q is not a positive duration", d)
				continue
			}
			p.ReplicationLagBound = lag
		case FieldRegions:
			l, ok := v.GetKind().(*structpb.Value_ListValue)
			if !ok {
				bad(name, "must be a list of {name, rtt_ms, state, ramp_percent}")
				continue
			}
			seen := map[string]int{}
			for i, e := range l.ListValue.GetValues() {
				r, err := decodeRegion(fmt.Sprintf("%s[%d]", name, i), e)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if j, dup := seen[r.Name]; dup {
					bad(fmt.Sprintf("%s[%d].name", name, i), "region %q is listed twice (also %s[%d])", r.Name, name, j)
					continue
				}
				seen[r.Name] = i
				p.Regions = append(p.Regions, r)
			}
		default:
			bad(name, "unknown field")
		}
	}
	if !schemaSeen && s.GetFields()[FieldSchema] == nil {
		bad(FieldSchema, "is required")
	}
	if p.Service == "" && s.GetFields()[FieldService] == nil {
		bad(FieldService, "is required")
	}
	if p.Protocol == "" && s.GetFields()[FieldProtocol] == nil {
		bad(FieldProtocol, "is required")
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// decodeRegion reads one entry of FieldRegions; path is its field path for errors.
func decodeRegion(path string, v *structpb.Value) (Region, error) {
	var r Region
	sv, ok := v.GetKind().(*structpb.Value_StructValue)
	if !ok {
		return r, fmt.Errorf("geode policy: %s: must be a struct {name, rtt_ms, state, ramp_percent}", path)
	}
	fields := sv.StructValue.GetFields()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("geode policy: %s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	for _, name := range sortedKeys(fields) {
		f := fields[name]
		switch name {
		case FieldRegionName, FieldRegionState:
			s, ok := f.GetKind().(*structpb.Value_StringValue)
			switch {
			case !ok:
				bad(name, "must be a string")
			case s.StringValue == "":
				bad(name, "must not be empty")
			case name == FieldRegionName:
				r.Name = s.StringValue
			default:
				r.State = s.StringValue
			}
		case FieldRegionRTTMs:
			n, ok := f.GetKind().(*structpb.Value_NumberValue)
			switch {
			case !ok:
				bad(name, "must be a number")
			case math.IsNaN(n.NumberValue) || math.IsInf(n.NumberValue, 0) || n.NumberValue < 0 || n.NumberValue > maxRTTMs:
				bad(name, "%v is not a number of milliseconds in [0,%d]", n.NumberValue, int64(maxRTTMs))
			default:
				r.RTT = time.Duration(math.Round(n.NumberValue * float64(time.Millisecond)))
			}
		case FieldRegionRampPercent:
			n, ok := f.GetKind().(*structpb.Value_NumberValue)
			switch {
			case !ok:
				bad(name, "must be a number")
			case n.NumberValue != math.Trunc(n.NumberValue) || n.NumberValue < 1 || n.NumberValue > 99:
				bad(name, "%v is not a whole percent in [1,99]", n.NumberValue)
			default:
				r.RampPercent = int(n.NumberValue)
			}
		default:
			bad(name, "unknown field")
		}
	}
	for _, req := range []string{FieldRegionName, FieldRegionRTTMs, FieldRegionState} {
		if fields[req] == nil {
			bad(req, "is required")
		}
	}
	return r, errors.Join(errs...)
}

// maxRTTMs bounds rtt_ms: an hour is far beyond any real RTT and far inside int64 ns.
const maxRTTMs = float64(time.Hour / time.Millisecond)

func sortedKeys(m map[string]*structpb.Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// String is a compact, stable rendering for logs and config dumps.
func (p Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s)", p.Service, p.Protocol)
	for _, kv := range [][2]string{
		{FieldConsistency, p.Consistency}, {FieldAffinityKey, p.AffinityKey},
		{FieldHomeRegions, p.HomeRegions}, {FieldWriteFailover, p.WriteFailover},
		{FieldResidency, p.Residency}, {FieldCrossRegionBudget, p.CrossRegionBudget},
	} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
		}
	}
	if p.ReplicationLagBound > 0 {
		fmt.Fprintf(&b, " %s=%s", FieldReplicationLagBound, p.ReplicationLagBound)
	}
	if len(p.Regions) > 0 {
		fmt.Fprintf(&b, " %s=", FieldRegions)
		for i, r := range p.Regions {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%s:%s", r.Name, r.RTT, r.State)
		}
	}
	return b.String()
}
