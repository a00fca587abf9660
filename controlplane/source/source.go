package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/controlplane/model"
)

// APIVersion and Kind identify the geode manifest.
const (
	APIVersion = "geode.io/v1alpha1"
	Kind       = "Geode"
)

// geodeDoc is the geode manifest.
type geodeDoc struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Regions    []regionDoc  `yaml:"regions"`
	Defaults   defaultsDoc  `yaml:"defaults"`
	Services   []serviceDoc `yaml:"services"`
}

type regionDoc struct {
	Name  string              `yaml:"name"`
	RTT   map[string]duration `yaml:"rtt"`
	State string              `yaml:"state"`
	// Zones are the Kubernetes zones (topology.kubernetes.io/zone) in the region: an
	// EndpointSlice endpoint is placed in the region that lists its zone.
	Zones []string `yaml:"zones"`
}

type defaultsDoc struct {
	Protocol            string   `yaml:"protocol"`
	Consistency         string   `yaml:"consistency"`
	WriteFailover       string   `yaml:"write_failover"`
	CrossRegionBudget   string   `yaml:"cross_region_budget"`
	ReplicationLagBound duration `yaml:"replication_lag_bound"`
}

type serviceDoc struct {
	Name                string                   `yaml:"name"`
	Authorities         []string                 `yaml:"authorities"`
	Protocol            string                   `yaml:"protocol"`
	Endpoints           map[string][]endpointDoc `yaml:"endpoints"`
	Consistency         string                   `yaml:"consistency"`
	AffinityKey         string                   `yaml:"affinity_key"`
	HomeRegions         string                   `yaml:"home_regions"`
	WriteFailover       string                   `yaml:"write_failover"`
	Residency           string                   `yaml:"residency"`
	CrossRegionBudget   string                   `yaml:"cross_region_budget"`
	ReplicationLagBound duration                 `yaml:"replication_lag_bound"`
	Annotations         map[string]string        `yaml:"annotations"`
}

// endpointDoc is "host:port" or {address: host:port, zone: NAME}.
type endpointDoc struct {
	Address string
	Zone    string
}

func (e *endpointDoc) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Decode(&e.Address)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var dst *string
			switch k.Value {
			case "address":
				dst = &e.Address
			case "zone":
				dst = &e.Zone
			default:
				return fmt.Errorf("line %d: field %s not found in endpoint (want address, zone)", k.Line, k.Value)
			}
			if err := v.Decode(dst); err != nil {
				return fmt.Errorf("line %d: endpoint %s must be a string", v.Line, k.Value)
			}
		}
		return nil
	default:
		return fmt.Errorf("line %d: an endpoint is \"host:port\" or {address: host:port, zone: NAME}", n.Line)
	}
}

// duration is a time.Duration written as "250ms", "2s".
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"250ms\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q: want a number with a unit, like \"250ms\"", n.Line, s)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, s)
	}
	*d = duration(v)
	return nil
}

// Load reads the manifests in dir and builds a validated model. Every error names the
// file, the document (1-based, within its file) and the field; all problems found are
// returned, joined.
func Load(dir string) (*model.Model, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	var (
		found   *geodeDoc
		foundAt origin
		svcs    []kubeService
		slices  []kubeSlice
		secrets []kubeSecret
		errs    []error
	)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		path := filepath.Join(dir, name)
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		docs, err := decodeFile(path, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range docs {
			switch {
			case d.geode != nil && found != nil:
				errs = append(errs, fmt.Errorf("%s: a second kind: %s manifest (the first is %s); exactly one is allowed", d.at, Kind, foundAt))
			case d.geode != nil:
				found, foundAt = d.geode, d.at
			case d.service != nil:
				svcs = append(svcs, kubeService{d.service, d.at})
			case d.slice != nil:
				slices = append(slices, kubeSlice{d.slice, d.at})
			case d.secret != nil:
				secrets = append(secrets, kubeSecret{d.secret, d.at})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("%s: no manifest of kind: %s (apiVersion: %s) in any *.yaml or *.yml file", dir, Kind, APIVersion)
	}
	spec, err := found.spec()
	if err != nil {
		return nil, prefixErrors(foundAt.String()+": ", err)
	}
	if spec.SessionKeys, err = sessionKeys(secrets); err != nil {
		return nil, err
	}
	zones, err := found.zones()
	if err != nil {
		return nil, prefixErrors(foundAt.String()+": ", err)
	}
	k := kubeInput{geode: found, geodeAt: foundAt, zones: zones, services: svcs, slices: slices}
	origins, err := k.addTo(&spec)
	if err != nil {
		return nil, err
	}
	m, err := model.New(spec)
	if err != nil {
		return nil, modelErrors(err, foundAt, origins)
	}
	return m, nil
}

// origin is where a document is: its file and 1-based index in the file, and for
// Kubernetes objects their kind and namespace/name.
type origin struct {
	file   string
	doc    int
	object string // "Service default/profiles"; empty for the geode manifest
}

func (o origin) String() string {
	if o.object == "" {
		return fmt.Sprintf("%s: document %d", o.file, o.doc)
	}
	return fmt.Sprintf("%s: document %d (%s)", o.file, o.doc, o.object)
}

// errorf returns an error naming the document and field.
func (o origin) errorf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", o, field, fmt.Sprintf(format, args...))
}

// document is one decoded manifest; exactly one of its pointers is set.
type document struct {
	at      origin
	geode   *geodeDoc
	service *corev1.Service
	slice   *discoveryv1.EndpointSlice
	secret  *corev1.Secret
}

// decodeFile decodes the YAML documents of one file. A first, lenient pass reads each
// document as a node (its kind; empty documents are skipped); a second, strict pass in
// step with it decodes the geode manifests, so that line numbers are the file's.
// Kubernetes objects are decoded strictly from their node with the k8s.io/api types.
func decodeFile(path string, b []byte) ([]document, error) {
	nodes := yaml.NewDecoder(bytes.NewReader(b))
	strict := yaml.NewDecoder(bytes.NewReader(b))
	strict.KnownFields(true)
	var out []document
	for i := 1; ; i++ {
		at := origin{file: path, doc: i}
		var n yaml.Node
		err := nodes.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			var skip yaml.Node
			_ = strict.Decode(&skip)
			continue
		}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		if err := n.Decode(&head); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		want := map[string]string{Kind: APIVersion, "Service": "v1", "EndpointSlice": "discovery.k8s.io/v1", "Secret": "v1"}[head.Kind]
		switch {
		case head.Kind == "":
			return nil, fmt.Errorf("%s: kind: is required (kind: %s, apiVersion: %s; or a Kubernetes Service, EndpointSlice or Secret)", at, Kind, APIVersion)
		case want == "":
			return nil, fmt.Errorf("%s: kind: %q is not supported; want %s, Service (v1), EndpointSlice (discovery.k8s.io/v1) or Secret (v1)", at, head.Kind, Kind)
		case head.APIVersion != want:
			return nil, fmt.Errorf("%s: apiVersion: %q is not supported for kind %s; want %q", at, head.APIVersion, head.Kind, want)
		}
		if head.Kind == Kind {
			d := new(geodeDoc)
			if err := strict.Decode(d); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			out = append(out, document{at: at, geode: d})
			continue
		}
		var skip yaml.Node
		_ = strict.Decode(&skip)
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		at.object = head.Kind + " " + ns + "/" + head.Metadata.Name
		switch head.Kind {
		case "Service":
			svc := new(corev1.Service)
			if err := decodeKube(&n, svc, "Service"); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			out = append(out, document{at: at, service: svc})
		case "EndpointSlice":
			sl := new(discoveryv1.EndpointSlice)
			if err := decodeKube(&n, sl, "EndpointSlice"); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			out = append(out, document{at: at, slice: sl})
		case "Secret":
			sec := new(corev1.Secret)
			if err := decodeKube(&n, sec, "Secret"); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			out = append(out, document{at: at, secret: sec})
		}
	}
}

// spec turns the manifest into a model spec, applying defaults and annotations.
func (d *geodeDoc) spec() (model.Spec, error) {
	var errs []error
	var spec model.Spec
	for _, r := range d.Regions {
		rs := model.RegionSpec{Name: r.Name, State: r.State}
		if r.RTT != nil {
			rs.RTT = make(map[string]time.Duration, len(r.RTT))
			for k, v := range r.RTT {
				rs.RTT[k] = time.Duration(v)
			}
		}
		spec.Regions = append(spec.Regions, rs)
	}
	for i, s := range d.Services {
		p := fmt.Sprintf("services[%d]", i)
		pol := model.Policy{
			Consistency: s.Consistency, AffinityKey: s.AffinityKey, HomeRegions: s.HomeRegions,
			WriteFailover: s.WriteFailover, Residency: s.Residency, CrossRegionBudget: s.CrossRegionBudget,
			ReplicationLagBound: time.Duration(s.ReplicationLagBound),
		}
		if err := applyAnnotations(p, s.Annotations, &pol); err != nil {
			errs = append(errs, err)
		}
		def := func(v *string, d string) {
			if *v == "" {
				*v = d
			}
		}
		def(&pol.Consistency, d.Defaults.Consistency)
		def(&pol.WriteFailover, d.Defaults.WriteFailover)
		def(&pol.CrossRegionBudget, d.Defaults.CrossRegionBudget)
		if pol.ReplicationLagBound == 0 {
			pol.ReplicationLagBound = time.Duration(d.Defaults.ReplicationLagBound)
		}
		proto := s.Protocol
		def(&proto, d.Defaults.Protocol)
		ss := model.ServiceSpec{Name: s.Name, Protocol: proto, Authorities: s.Authorities, Policy: pol}
		if s.Endpoints != nil {
			ss.Endpoints = make(map[string][]model.Endpoint, len(s.Endpoints))
			for region, eps := range s.Endpoints {
				list := make([]model.Endpoint, len(eps))
				for j, e := range eps {
					list[j] = model.Endpoint{Address: e.Address, Zone: e.Zone}
				}
				ss.Endpoints[region] = list
			}
		}
		spec.Services = append(spec.Services, ss)
	}
	return spec, errors.Join(errs...)
}

// applyAnnotations fills policy fields from geode.io/* annotations; giving a field both
// ways is an error, as in the sidecar config.
func applyAnnotations(path string, ann map[string]string, pol *model.Policy) error {
	var errs []error
	fields := map[string]struct {
		name string
		dst  *string
	}{
		affinity.AnnotationConsistency:       {"consistency", &pol.Consistency},
		affinity.AnnotationAffinityKey:       {"affinity_key", &pol.AffinityKey},
		affinity.AnnotationHomeRegions:       {"home_regions", &pol.HomeRegions},
		affinity.AnnotationCrossRegionBudget: {"cross_region_budget", &pol.CrossRegionBudget},
		affinity.AnnotationResidency:         {"residency", &pol.Residency},
	}
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := ann[k]
		p := fmt.Sprintf("%s.annotations[%q]", path, k)
		if k == affinity.AnnotationReplicationLagBound {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil || d <= 0:
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", p, v))
			case pol.ReplicationLagBound != 0:
				errs = append(errs, fmt.Errorf("%s: replication_lag_bound is set too", p))
			default:
				pol.ReplicationLagBound = d
			}
			continue
		}
		f, ok := fields[k]
		switch {
		case !ok && strings.HasPrefix(k, "geode.io/"):
			errs = append(errs, fmt.Errorf("%s: unknown geode.io annotation; known: %s", p, strings.Join(affinity.ServiceAnnotations(), ", ")))
		case !ok:
			// Not ours: Kubernetes objects carry many annotations.
		case *f.dst != "":
			errs = append(errs, fmt.Errorf("%s: %s is set too", p, f.name))
		default:
			*f.dst = v
		}
	}
	return errors.Join(errs...)
}

// prefixErrors puts prefix before every error joined in err.
func prefixErrors(prefix string, err error) error {
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return errors.Join(out...)
}
