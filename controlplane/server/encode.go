package server

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// encodeOnce returns a copy of snap whose resources are encoded once, for every client.
//
// go-control-plane's SnapshotCache wraps the resources of each response it creates in
// fresh cachedResources, so a state-of-the-world or Delta push re-marshals every resource
// once per client: with 10,000 clients that was most of the control plane's CPU time for a
// region-state change (see BENCHMARKS.md, "Control-plane fan-out"). Here each resource is
// replaced by an empty message of the same type that has only its name field set and
// carries every other field as pre-encoded unknown bytes; marshaling it is then a copy.
// The bytes on the wire are a valid encoding of the same message (only the field order
// differs: the name comes first), so clients decode exactly what translate built.
//
// The cache's resources are therefore wire-only: code that needs their fields reads them
// from translate, never from the cache. Snapshot checks (Consistent, Validate) run in
// translate, before this.
func encodeOnce(snap *cache.Snapshot) (*cache.Snapshot, error) {
	out := &cache.Snapshot{}
	for i, group := range snap.Resources {
		items := make(map[string]types.ResourceWithTTL, len(group.Items))
		for name, item := range group.Items {
			enc, err := encodeResource(item.Resource)
			if err != nil {
				return nil, fmt.Errorf("encoding %q: %w", name, err)
			}
			items[name] = types.ResourceWithTTL{Resource: enc, TTL: item.TTL}
		}
		out.Resources[i] = cache.Resources{Version: group.Version, Items: items}
	}
	return out, nil
}

// encodeResource returns r as its name field plus the rest of it pre-encoded. A resource
// type without a string name field is returned as is.
func encodeResource(r types.Resource) (types.Resource, error) {
	src := r.ProtoReflect()
	fd := nameField(src.Descriptor())
	if fd == nil {
		return r, nil
	}
	rest := proto.Clone(r)
	rest.ProtoReflect().Clear(fd)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rest)
	if err != nil {
		return nil, err
	}
	enc := src.New()
	if src.Has(fd) {
		enc.Set(fd, src.Get(fd))
	}
	enc.SetUnknown(b)
	return enc.Interface(), nil
}

// nameField is the field cache.GetResourceName reads: cluster_name of a
// ClusterLoadAssignment, name of everything else.
func nameField(md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	n := protoreflect.Name("name")
	if md.FullName() == "envoy.config.endpoint.v3.ClusterLoadAssignment" {
		n = "cluster_name"
	}
	fd := md.Fields().ByName(n)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return nil
	}
	return fd
}
