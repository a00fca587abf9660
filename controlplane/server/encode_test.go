package server

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/geodemesh/geode/controlplane/translate"
)

// Every resource encoded once decodes to exactly what translate built, keeps its name
// and version, and marshals to the same bytes every time.
func TestEncodeOnceKeepsResources(t *testing.T) {
	m := fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3001"})
	snap, err := translate.ForRegion(m, "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encodeOnce(snap)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, group := range snap.Resources {
		got := enc.Resources[i]
		if got.Version != group.Version || len(got.Items) != len(group.Items) {
			t.Fatalf("type %d: version %q with %d items, want %q with %d", i, got.Version, len(got.Items), group.Version, len(group.Items))
		}
		for name, item := range group.Items {
			e := got.Items[name].Resource
			if cache.GetResourceName(e) != name {
				t.Errorf("%s: encoded resource is named %q", name, cache.GetResourceName(e))
			}
			b1, err := cache.MarshalResource(e)
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := cache.MarshalResource(e)
			if string(b1) != string(b2) {
				t.Errorf("%s: two marshals differ", name)
			}
			dec := item.Resource.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b1, dec); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !proto.Equal(dec, item.Resource) {
				t.Errorf("%s: decodes to %v, want %v", name, dec, item.Resource)
			}
			n++
		}
	}
	if n < 4 {
		t.Fatalf("only %d resources checked", n)
	}
}
