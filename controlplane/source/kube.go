package source

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/model"
)

// appProtocol maps a Service port's spec.ports[].appProtocol to a model protocol. Unset
// means the geode manifest's defaults.protocol, else http1.
func appProtocol(ap string) (string, bool) {
	switch ap {
	case "grpc":
		return model.ProtocolGRPC, true
	case "kubernetes.io/h2c":
		return model.ProtocolHTTP2, true
	case "http":
		return model.ProtocolHTTP1, true
	}
	return "", false
}

type kubeService struct {
	obj *corev1.Service
	at  origin
}

type kubeSlice struct {
	obj *discoveryv1.EndpointSlice
	at  origin
}

// kubeInput is what Load found besides the geode manifest.
type kubeInput struct {
	geode    *geodeDoc
	geodeAt  origin
	zones    map[string]string // zone → region
	services []kubeService
	slices   []kubeSlice
}

// specOrigin says where a model service came from, to map model errors back to files.
type specOrigin struct {
	at origin
	// endpoints: region → where each endpoint (by index) came from.
	endpoints map[string][]string
}

// decodeKube decodes a Kubernetes object from its YAML node, strictly (unknown fields
// are errors), with the conventions of sigs.k8s.io/yaml (YAML → JSON → the k8s.io/api
// types' JSON tags).
func decodeKube(n *yaml.Node, into any, kind string) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	err = k8syaml.UnmarshalStrict(b, into)
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if _, rest, ok := strings.Cut(msg, `unknown field "`); ok {
		field, _, _ := strings.Cut(rest, `"`)
		// The line, when the name is used once in the document (json's error has no path).
		if lines := keyLines(n, field, nil); len(lines) == 1 {
			return fmt.Errorf("line %d: field %s not found in %s", lines[0], field, kind)
		}
		return fmt.Errorf("field %s not found in %s", field, kind)
	}
	return errors.New(msg)
}

// keyLines appends the lines of the mapping keys called name under n.
func keyLines(n *yaml.Node, name string, lines []int) []int {
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 && c.Value == name {
			lines = append(lines, c.Line)
		}
		lines = keyLines(c, name, lines)
	}
	return lines
}

// zones returns the zone → region map the manifest declares.
func (d *geodeDoc) zones() (map[string]string, error) {
	var errs []error
	out := map[string]string{}
	for i, r := range d.Regions {
		for j, z := range r.Zones {
			p := fmt.Sprintf("regions[%d].zones[%d]", i, j)
			switch prev, dup := out[z]; {
			case z == "" || strings.Trim(z, "abcdefghijklmnopqrstuvwxyz0123456789-") != "":
				errs = append(errs, fmt.Errorf("%s: %q must be lower-case letters, digits and '-'", p, z))
			case dup:
				errs = append(errs, fmt.Errorf("%s: zone %q is listed in region %q already", p, z, prev))
			default:
				out[z] = r.Name
			}
		}
	}
	return out, errors.Join(errs...)
}

// addTo appends the Kubernetes Services, with the endpoints of their EndpointSlices, to
// spec, and returns where every service of spec came from (nil for the geode
// manifest's own).
func (k *kubeInput) addTo(spec *model.Spec) ([]*specOrigin, error) {
	var errs []error
	origins := make([]*specOrigin, len(spec.Services))
	regions := make([]string, len(spec.Regions))
	for i, r := range spec.Regions {
		regions[i] = r.Name
	}
	// Names: the geode manifest's services, then each Service in file order.
	defined := map[string]string{}
	geodeOwn := map[string]bool{}
	for i, s := range k.geode.Services {
		if _, dup := defined[s.Name]; !dup && s.Name != "" {
			defined[s.Name] = fmt.Sprintf("%s: services[%d]", k.geodeAt, i)
			geodeOwn[s.Name] = true
		}
	}
	byKey := map[string]int{} // namespace/name → index in spec.Services
	for _, ks := range k.services {
		svc, at := ks.obj, ks.at
		if prev, dup := defined[svc.Name]; dup {
			errs = append(errs, at.errorf("metadata.name", "service %q is also defined in %s; define it once", svc.Name, prev))
			continue
		}
		ss, err := k.service(svc, at, regions)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defined[svc.Name] = at.String()
		byKey[namespace(svc.Namespace)+"/"+svc.Name] = len(spec.Services)
		spec.Services = append(spec.Services, ss)
		origins = append(origins, &specOrigin{at: at, endpoints: map[string][]string{}})
	}
	for _, sl := range k.slices {
		obj, at := sl.obj, sl.at
		name := obj.Labels[discoveryv1.LabelServiceName]
		field := fmt.Sprintf("metadata.labels[%q]", discoveryv1.LabelServiceName)
		if name == "" {
			errs = append(errs, at.errorf(field, "is required: it names the Service whose endpoints the slice holds"))
			continue
		}
		key := namespace(obj.Namespace) + "/" + name
		i, ok := byKey[key]
		switch {
		case ok:
		case serviceIndex(k.services, key) >= 0:
			continue // the Service is in error: reported there
		case geodeOwn[name]:
			errs = append(errs, at.errorf(field, "service %q is defined in %s, which lists its endpoints itself; EndpointSlices are for Service manifests", name, defined[name]))
			continue
		default:
			errs = append(errs, at.errorf(field, "no Service %s among the manifests", key))
			continue
		}
		if err := k.addEndpoints(&spec.Services[i], origins[i], obj, at, k.services[serviceIndex(k.services, key)].obj); err != nil {
			errs = append(errs, err)
		}
	}
	// A Service with no ready endpoint (scaled to zero, every pod unready during a
	// rollout, no slice yet) stays a service without endpoints: refusing it would hold up
	// every reload of the directory. It is published with an empty endpoint set until
	// an endpoint is ready, or one of its sidecars registers one.
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(errs...)
	}
	return origins, nil
}

func serviceIndex(list []kubeService, key string) int {
	return slices.IndexFunc(list, func(s kubeService) bool { return namespace(s.obj.Namespace)+"/"+s.obj.Name == key })
}

func namespace(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// service converts a Service into a model service, without endpoints.
func (k *kubeInput) service(svc *corev1.Service, at origin, regions []string) (model.ServiceSpec, error) {
	var errs []error
	name, ns := svc.Name, namespace(svc.Namespace)
	if name == "" {
		errs = append(errs, at.errorf("metadata.name", "is required"))
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		errs = append(errs, at.errorf("spec.type", "ExternalName Services have no endpoints to route to; not supported"))
	}
	proto := k.geode.Defaults.Protocol
	if len(svc.Spec.Ports) == 0 {
		errs = append(errs, at.errorf("spec.ports", "at least one port is required (geode routes to the first)"))
	} else if ap := svc.Spec.Ports[0].AppProtocol; ap != nil {
		p, ok := appProtocol(*ap)
		if !ok {
			errs = append(errs, at.errorf("spec.ports[0].appProtocol", "%q is not one of grpc, kubernetes.io/h2c, http", *ap))
		}
		proto = p
	}
	pol := model.Policy{}
	parsed, err := affinity.PolicyFromAnnotations(name, svc.Annotations, regions)
	if err != nil {
		for _, e := range unjoin(err) {
			msg := strings.TrimPrefix(e.Error(), fmt.Sprintf("service %q: ", name))
			if rest, ok := strings.CutPrefix(msg, "annotation "); ok {
				if key, detail, ok := strings.Cut(rest, ": "); ok {
					errs = append(errs, at.errorf(fmt.Sprintf("metadata.annotations[%q]", key), "%s", detail))
					continue
				}
			}
			errs = append(errs, at.errorf("metadata.annotations", "%s", msg))
		}
	}
	ann := func(key string) string { return strings.TrimSpace(svc.Annotations[key]) }
	if v := ann(affinity.AnnotationConsistency); v != "" {
		if _, err := consistency.ParseLevel(v); err != nil {
			errs = append(errs, at.errorf(fmt.Sprintf("metadata.annotations[%q]", affinity.AnnotationConsistency), "%v", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return model.ServiceSpec{}, err
	}
	pol.Consistency = ann(affinity.AnnotationConsistency)
	pol.AffinityKey = ann(affinity.AnnotationAffinityKey)
	pol.HomeRegions = ann(affinity.AnnotationHomeRegions)
	pol.Residency = ann(affinity.AnnotationResidency)
	pol.CrossRegionBudget = ann(affinity.AnnotationCrossRegionBudget)
	pol.ReplicationLagBound = parsed.ReplicationLagBound
	d := k.geode.Defaults
	if pol.Consistency == "" {
		pol.Consistency = d.Consistency
	}
	pol.WriteFailover = d.WriteFailover
	if pol.CrossRegionBudget == "" {
		pol.CrossRegionBudget = d.CrossRegionBudget
	}
	if pol.ReplicationLagBound == 0 {
		pol.ReplicationLagBound = time.Duration(d.ReplicationLagBound)
	}
	return model.ServiceSpec{
		Name:     name,
		Protocol: proto,
		Authorities: []string{
			name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local",
		},
		Policy: pol,
	}, nil
}

// addEndpoints adds the ready endpoints of slice to ss (leaving ss.Endpoints nil when
// there is none, so a Service without ready endpoints has one model form). The port is the slice's port
// named like the Service's first port; the region is the one whose zones list the
// endpoint's zone.
func (k *kubeInput) addEndpoints(ss *model.ServiceSpec, o *specOrigin, sl *discoveryv1.EndpointSlice, at origin, svc *corev1.Service) error {
	var errs []error
	switch sl.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		errs = append(errs, at.errorf("addressType", "%q is not one of IPv4, IPv6, FQDN", sl.AddressType))
	}
	portName := svc.Spec.Ports[0].Name
	pi := slices.IndexFunc(sl.Ports, func(p discoveryv1.EndpointPort) bool {
		return p.Name != nil && *p.Name == portName || p.Name == nil && portName == ""
	})
	var port int32
	switch {
	case pi < 0:
		errs = append(errs, at.errorf("ports", "no port named %q, the name of the Service's spec.ports[0] (geode routes to a Service's first port)", portName))
	case sl.Ports[pi].Port == nil || *sl.Ports[pi].Port < 1 || *sl.Ports[pi].Port > 65535:
		errs = append(errs, at.errorf(fmt.Sprintf("ports[%d].port", pi), "a port number in [1,65535] is required"))
	default:
		port = *sl.Ports[pi].Port
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for j, ep := range sl.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		p := fmt.Sprintf("endpoints[%d]", j)
		if len(ep.Addresses) == 0 || ep.Addresses[0] == "" {
			errs = append(errs, at.errorf(p+".addresses", "at least one address is required"))
			continue
		}
		if ep.Zone == nil || *ep.Zone == "" {
			errs = append(errs, at.errorf(p+".zone", "is required: geode places an endpoint in the region whose zones (in %s) list its zone", k.geodeAt))
			continue
		}
		region, ok := k.zones[*ep.Zone]
		if !ok {
			errs = append(errs, at.errorf(p+".zone", "zone %q is in no region's zones (in %s)", *ep.Zone, k.geodeAt))
			continue
		}
		addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
		if slices.ContainsFunc(ss.Endpoints[region], func(e model.Endpoint) bool { return e.Address == addr }) {
			continue // the same endpoint in two slices, as during a slice handover
		}
		if ss.Endpoints == nil {
			ss.Endpoints = map[string][]model.Endpoint{}
		}
		ss.Endpoints[region] = append(ss.Endpoints[region], model.Endpoint{Address: addr, Zone: *ep.Zone})
		o.endpoints[region] = append(o.endpoints[region], fmt.Sprintf("%s: %s.addresses[0]", at, p))
	}
	return errors.Join(errs...)
}

// modelErrors maps the field paths of model.New's errors back to the manifests: paths
// of regions and of the geode manifest's services to the geode manifest; those of a
// Service to its document (its endpoints to their EndpointSlice).
func modelErrors(err error, geodeAt origin, origins []*specOrigin) error {
	var out []error
	for _, e := range unjoin(err) {
		i, rest, ok := servicePath(e.Error())
		if !ok || i >= len(origins) || origins[i] == nil {
			out = append(out, fmt.Errorf("%s: %w", geodeAt, e))
			continue
		}
		o := origins[i]
		field, detail, _ := strings.Cut(rest, ": ")
		if region, j, ok := endpointPath(field); ok {
			if list := o.endpoints[region]; j < len(list) {
				out = append(out, fmt.Errorf("%s: %s", list[j], detail))
				continue
			}
		}
		if key := policyAnnotation(field); key != "" {
			field = fmt.Sprintf("metadata.annotations[%q] (or the geode manifest's defaults)", key)
		}
		out = append(out, o.at.errorf(field, "%s", detail))
	}
	return errors.Join(out...)
}

// servicePath splits "services[I].REST" into I and REST.
func servicePath(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "services[")
	if !ok {
		return 0, "", false
	}
	idx, rest, ok := strings.Cut(rest, "].")
	i, err := strconv.Atoi(idx)
	return i, rest, ok && err == nil
}

// endpointPath splits "endpoints.REGION[J].address" into REGION and J.
func endpointPath(field string) (string, int, bool) {
	rest, ok := strings.CutPrefix(field, "endpoints.")
	if !ok {
		return "", 0, false
	}
	rest, ok = strings.CutSuffix(rest, "].address")
	if !ok {
		return "", 0, false
	}
	region, idx, ok := strings.Cut(rest, "[")
	j, err := strconv.Atoi(idx)
	return region, j, ok && err == nil
}

// policyAnnotation returns the annotation that sets a model policy field.
func policyAnnotation(field string) string {
	switch field {
	case "consistency":
		return affinity.AnnotationConsistency
	case "affinity_key":
		return affinity.AnnotationAffinityKey
	case "home_regions":
		return affinity.AnnotationHomeRegions
	case "residency":
		return affinity.AnnotationResidency
	case "cross_region_budget":
		return affinity.AnnotationCrossRegionBudget
	case "replication_lag_bound":
		return affinity.AnnotationReplicationLagBound
	}
	return ""
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
