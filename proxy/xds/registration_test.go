package xds_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/model"
)

// A sidecar started with a service registers its inbound listener through its node
// metadata: a sidecar of another region reaches it, though the manifests list no
// endpoint for the service; when it stops, the endpoint goes away.
func TestRegisteredSidecarIsReachableFromAnotherRegion(t *testing.T) {
	backends := regionBackends(t, "us-east", "eu-west", "us-west")
	// "orders" is declared (policy and all) with no endpoints: its sidecars bring them.
	cp := startControlPlane(t, fleet(t, backends, model.ServiceSpec{Name: "orders"}), "127.0.0.1:0")

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", "orders-eu-west")
	}))
	t.Cleanup(app.Close)
	inbound, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	eu := startMeshSidecar(t, `
region: eu-west
listeners: {outbound: "127.0.0.1:1", inbound: "127.0.0.1:1"}
app: {address: "`+app.Listener.Addr().String()+`"}
regions: [{name: eu-west}]
limits: {drain_timeout: 2s}
`, cp.xdsAddr, "orders-eu-west-1", "", sidecarRegistration{service: "orders", inbound: inbound})

	us := startSidecar(t, cp.xdsAddr, "web-us-east-1", "")
	d := eventually(t, 5*time.Second, "orders served from eu-west through the registered sidecar", func() bool { return us.servedBy("orders") == "orders-eu-west" })
	t.Logf("a us-east sidecar reached the registered eu-west sidecar %s after starting", d)

	regs := cp.ConfigDump().Registrations
	if len(regs) != 1 || regs[0].NodeID != "orders-eu-west-1" || regs[0].Address != inbound.Addr().String() || regs[0].Zone != "eu-west-a" || regs[0].Streams != 2 {
		t.Fatalf("registrations = %+v, want the eu-west sidecar's inbound listener over ADS and LRS", regs)
	}
	// The sidecar stops: its streams end, and so does its endpoint.
	eu.stop()
	eventually(t, 5*time.Second, "orders without endpoints once the sidecar left", func() bool {
		return strings.HasPrefix(us.servedBy("orders"), "4") || strings.HasPrefix(us.servedBy("orders"), "5")
	})
	if st := cp.Status().Registrations; st.Active != 0 || st.Registered != 1 || st.Deregistered != 1 {
		t.Fatalf("registration status = %+v", st)
	}
}
