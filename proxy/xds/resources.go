package xds

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/proxy/config"
)

// Type URLs of the resources the client subscribes to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	// SecretType is SDS: the client asks for the one secret api.SessionKeysSecret.
	SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// cluster is one decoded CDS resource.
type cluster struct {
	name    string
	eds     string // EDS service name
	connect time.Duration
	policy  api.Policy
}

// endpoints is one decoded ClusterLoadAssignment: usable addresses by region.
type endpoints map[string][]string

// resources is what the client holds of the control plane's state: the last CDS set
// (nil before the first), the CLAs received so far, by EDS name, and the session key
// ring from SDS. Values are never mutated once stored, so clone copies only the maps.
type resources struct {
	clusters map[string]cluster
	clas     map[string]endpoints
	// keys is the session key ring in the key-file format, nil when the control plane
	// has none; keysSeen reports whether SDS has answered at all.
	keys     []byte
	keysSeen bool
}

func (r resources) clone() resources {
	out := r
	out.clusters, out.clas = maps.Clone(r.clusters), maps.Clone(r.clas)
	return out
}

// edsNames returns the EDS names the clusters need, sorted.
func (r resources) edsNames() []string {
	var names []string
	for _, c := range r.clusters {
		names = append(names, c.eds)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// complete reports whether CDS and SDS have answered and every cluster has its CLA.
func (r resources) complete() bool {
	if r.clusters == nil || !r.keysSeen {
		return false
	}
	for _, c := range r.clusters {
		if _, ok := r.clas[c.eds]; !ok {
			return false
		}
	}
	return true
}

// decodeClusters decodes a CDS response: every resource must be an EDS cluster with
// valid geode metadata naming it, and every cluster must carry the same region list.
func decodeClusters(list []*anypb.Any) (map[string]cluster, error) {
	out := map[string]cluster{}
	var errs []error
	var first string // cluster whose region list the others must match
	for i, a := range list {
		c := new(clusterv3.Cluster)
		if a.GetTypeUrl() != ClusterType {
			errs = append(errs, fmt.Errorf("resources[%d]: type %q, want %s", i, a.GetTypeUrl(), ClusterType))
			continue
		}
		if err := a.UnmarshalTo(c); err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		name := c.GetName()
		if name == "" {
			errs = append(errs, fmt.Errorf("resources[%d]: cluster has no name", i))
			continue
		}
		if _, dup := out[name]; dup {
			errs = append(errs, fmt.Errorf("cluster %q: sent twice", name))
			continue
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			errs = append(errs, fmt.Errorf("cluster %q: type %s: a geode sidecar takes EDS clusters only", name, c.GetType()))
			continue
		}
		pol, err := api.Decode(c.GetMetadata().GetFilterMetadata()[api.MetadataKey])
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: metadata %q: %w", name, api.MetadataKey, err))
			continue
		}
		if pol.Service != name {
			errs = append(errs, fmt.Errorf("cluster %q: geode policy names service %q", name, pol.Service))
			continue
		}
		if len(pol.Regions) == 0 {
			errs = append(errs, fmt.Errorf("cluster %q: geode policy has no regions (is the control plane older than this sidecar?)", name))
			continue
		}
		if first == "" {
			first = name
		} else if !slices.Equal(pol.Regions, out[first].policy.Regions) {
			errs = append(errs, fmt.Errorf("cluster %q: regions differ from cluster %q's", name, first))
			continue
		}
		eds := c.GetEdsClusterConfig().GetServiceName()
		if eds == "" {
			eds = name
		}
		out[name] = cluster{name: name, eds: eds, connect: c.GetConnectTimeout().AsDuration(), policy: pol}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("CDS: %w", err)
	}
	return out, nil
}

// decodeAssignments decodes an EDS response. Endpoints that are neither HEALTHY nor
// UNKNOWN are left out, as grpc-go and Envoy do.
func decodeAssignments(list []*anypb.Any) (map[string]endpoints, error) {
	out := map[string]endpoints{}
	var errs []error
	for i, a := range list {
		cla := new(endpointv3.ClusterLoadAssignment)
		if a.GetTypeUrl() != EndpointType {
			errs = append(errs, fmt.Errorf("resources[%d]: type %q, want %s", i, a.GetTypeUrl(), EndpointType))
			continue
		}
		if err := a.UnmarshalTo(cla); err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		name := cla.GetClusterName()
		if name == "" {
			errs = append(errs, fmt.Errorf("resources[%d]: assignment has no cluster_name", i))
			continue
		}
		eps := endpoints{}
		for j, loc := range cla.GetEndpoints() {
			region := loc.GetLocality().GetRegion()
			if region == "" {
				errs = append(errs, fmt.Errorf("assignment %q: endpoints[%d]: locality has no region", name, j))
				continue
			}
			for k, lbe := range loc.GetLbEndpoints() {
				switch lbe.GetHealthStatus() {
				case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				default:
					continue
				}
				sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil || sa.GetProtocol() != corev3.SocketAddress_TCP || sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
					errs = append(errs, fmt.Errorf("assignment %q: endpoints[%d].lb_endpoints[%d]: want a TCP socket address with a host and a port value", name, j, k))
					continue
				}
				addr := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
				if !slices.Contains(eps[region], addr) {
					eps[region] = append(eps[region], addr)
				}
			}
		}
		out[name] = eps
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("EDS: %w", err)
	}
	return out, nil
}

// Part is the part of a sidecar's configuration that comes from the control plane; the
// rest (listeners, app, limits, session settings, tracing, debug) stays the sidecar's
// own. It is also what the client persists for a cold start (the cache file is the
// sidecar's alone, mode 0600: it holds the session key ring).
type Part struct {
	// Region is the region this part was computed for.
	Region   string           `yaml:"region"`
	Regions  []config.Region  `yaml:"regions"`
	Services []config.Service `yaml:"services"`
	// SessionKeys is the fleet's session key ring (key-file format) from the control
	// plane's SDS secret; empty when it sends none (the sidecar's keys_file applies).
	SessionKeys string `yaml:"session_keys,omitempty"`
	// Versions are the xDS versions it was built from, by type URL.
	Versions map[string]string `yaml:"versions,omitempty"`
}

// part turns complete resources into the xDS part of a config for a sidecar in local.
// Regions come from the clusters' geode metadata (base's regions when there are no
// clusters). A service whose EDS has no usable endpoint in any region is kept without
// endpoints (its calls are answered 503) and named in empty.
func (r resources) part(local string, base []config.Region) (p Part, empty []string, err error) {
	p.Region = local
	p.SessionKeys = string(r.keys)
	var view []api.Region
	for _, name := range slices.Sorted(maps.Keys(r.clusters)) {
		view = r.clusters[name].policy.Regions
		break
	}
	if view == nil {
		p.Regions = slices.Clone(base)
	} else {
		known := false
		for _, reg := range view {
			if reg.Name == local {
				known = true
			}
		}
		if !known {
			return Part{}, nil, fmt.Errorf("regions: the control plane's regions do not include this sidecar's region %q", local)
		}
		rtt := map[string]config.Duration{}
		for _, reg := range view {
			if reg.Name != local {
				rtt[reg.Name] = config.Duration(reg.RTT)
			}
		}
		for _, reg := range view {
			cr := config.Region{Name: reg.Name, State: reg.State, RampPercent: reg.RampPercent}
			if reg.Name == local {
				cr.RTT = rtt
			}
			p.Regions = append(p.Regions, cr)
		}
	}
	regionSet := map[string]bool{}
	for _, reg := range p.Regions {
		regionSet[reg.Name] = true
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.clusters)) {
		c := r.clusters[name]
		eps := r.clas[c.eds]
		for _, region := range slices.Sorted(maps.Keys(eps)) {
			if !regionSet[region] {
				errs = append(errs, fmt.Errorf("assignment %q: locality region %q is not one of the cluster's regions", c.eds, region))
			}
		}
		if len(eps) == 0 {
			empty = append(empty, name)
		}
		pol := c.policy
		svc := config.Service{
			Name:                name,
			Authorities:         slices.Clone(pol.Authorities),
			Protocol:            pol.Protocol,
			Endpoints:           map[string][]string{},
			Consistency:         pol.Consistency,
			AffinityKey:         pol.AffinityKey,
			HomeRegions:         pol.HomeRegions,
			WriteFailover:       pol.WriteFailover,
			Residency:           pol.Residency,
			CrossRegionBudget:   pol.CrossRegionBudget,
			ReplicationLagBound: config.Duration(pol.ReplicationLagBound),
		}
		svc.Timeouts.Connect = config.Duration(c.connect)
		for region, addrs := range eps {
			svc.Endpoints[region] = slices.Clone(addrs)
		}
		p.Services = append(p.Services, svc)
	}
	if err := errors.Join(errs...); err != nil {
		return Part{}, nil, err
	}
	return p, empty, nil
}

// Merge returns base with p's regions and services, defaulted and validated exactly as
// a config file would be (it goes through config.Parse). base is not modified.
//
// The control plane carries routing policy and endpoints, not the sidecar's own
// resilience settings. When base has a service of the same name, that service's
// request and idle timeouts, retry and breaker settings are kept for the service from
// the control plane (its connect timeout comes from the cluster); base services the
// control plane does not send are not routed.
func Merge(base *config.Config, p Part) (*config.Config, error) {
	if p.Region != base.Region {
		return nil, fmt.Errorf("xds: state is for region %q, this sidecar runs in %q", p.Region, base.Region)
	}
	c := *base
	c.Regions = p.Regions
	c.Services = make([]config.Service, len(p.Services))
	for i, svc := range p.Services {
		if own := baseService(base, svc.Name); own != nil {
			svc.Timeouts.Request = own.Timeouts.Request
			svc.Timeouts.Idle = own.Timeouts.Idle
			svc.Retry = own.Retry
			svc.Breaker = own.Breaker
		}
		c.Services[i] = svc
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("xds: rendering the configuration: %w", err)
	}
	out, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	if p.SessionKeys != "" {
		if out.Session.Keys, err = consistency.ParseKeyRing([]byte(p.SessionKeys)); err != nil {
			return nil, fmt.Errorf("xds: session keys: %w", err)
		}
	}
	return out, nil
}

// baseService returns base's service called name, or nil.
func baseService(base *config.Config, name string) *config.Service {
	for i := range base.Services {
		if base.Services[i].Name == name {
			return &base.Services[i]
		}
	}
	return nil
}

// encodePart renders p as YAML; equal parts render equally.
func encodePart(p Part) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodePart strictly decodes a persisted Part.
func decodePart(b []byte) (Part, error) {
	var p Part
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return Part{}, err
	}
	if p.Region == "" {
		return Part{}, errors.New("region: is required")
	}
	return p, nil
}

// decodeSecrets decodes an SDS response: nothing (the control plane has no ring), or the
// secret api.SessionKeysSecret, a generic secret whose inline bytes are a valid key ring.
func decodeSecrets(list []*anypb.Any) ([]byte, error) {
	var keys []byte
	var errs []error
	for i, a := range list {
		sec := new(tlsv3.Secret)
		if a.GetTypeUrl() != SecretType {
			errs = append(errs, fmt.Errorf("resources[%d]: type %q, want %s", i, a.GetTypeUrl(), SecretType))
			continue
		}
		if err := a.UnmarshalTo(sec); err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		if sec.GetName() != api.SessionKeysSecret {
			errs = append(errs, fmt.Errorf("resources[%d]: secret %q was not asked for (only %q)", i, sec.GetName(), api.SessionKeysSecret))
			continue
		}
		b := sec.GetGenericSecret().GetSecret().GetInlineBytes()
		if b == nil {
			errs = append(errs, fmt.Errorf("secret %q: want a generic_secret with inline_bytes", sec.GetName()))
			continue
		}
		if _, err := consistency.ParseKeyRing(b); err != nil {
			errs = append(errs, fmt.Errorf("secret %q: %w", sec.GetName(), err))
			continue
		}
		keys = b
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("SDS: %w", err)
	}
	return keys, nil
}
