package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/controlplane/model"
)

// A proxyless gRPC client names only its own service's resources. In a fleet of more
// than one service (and with Envoy's outbound listener in LDS), the control plane must
// still answer it: a cache that waits until a request names every resource of a type
// would leave it waiting forever.
func TestProxylessGRPCInAFleetOfSeveralServices(t *testing.T) {
	addr := startBackend(t, "us-east")
	eps := map[string][]model.Endpoint{"us-east": {{Address: addr}}}
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{{Name: "us-east"}},
		Services: []model.ServiceSpec{
			{Name: "where", Protocol: "grpc", Endpoints: eps},
			{Name: "elsewhere", Protocol: "grpc", Authorities: []string{"elsewhere", "elsewhere.prod"}, Endpoints: eps},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, xdsAddr, _ := startControlPlane(t, m)
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap(xdsAddr, "client-multi", "us-east"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///where", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, whereMethod, wrapperspb.String("?"), out, grpc.WaitForReady(true)); err != nil || out.GetValue() != "us-east" {
		t.Fatalf("call through xds:///where in a two-service fleet: %q, %v", out.GetValue(), err)
	}
}
