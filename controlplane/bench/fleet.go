package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The benchmark's fleet: three regions with the RTTs of shared/data/regions.csv and
// ten services (five HTTP with two authorities each, five gRPC), three endpoints per
// region each.
var regions = []string{"us-east", "eu-west", "us-west"}

const services = 10

func serviceName(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("http-%d", i)
	}
	return fmt.Sprintf("grpc-%d", i)
}

// resourceNames returns what a client subscribes to: every listener (authority),
// every cluster and its assignment, and the one route configuration.
func resourceNames() (listeners, clusters []string) {
	for i := range services {
		name := serviceName(i)
		clusters = append(clusters, name)
		listeners = append(listeners, name)
		if i%2 == 0 {
			listeners = append(listeners, name+".default.svc.cluster.local")
		}
	}
	return listeners, clusters
}

// writeFleet writes the geode manifest into dir.
func writeFleet(dir string) error {
	var b strings.Builder
	b.WriteString(`apiVersion: geode.io/v1alpha1
kind: Geode
regions:
  - name: us-east
    rtt: {eu-west: 81ms, us-west: 87ms}
  - name: eu-west
    rtt: {us-west: 137ms}
  - name: us-west
defaults:
  consistency: eventual
services:
`)
	for i := range services {
		name := serviceName(i)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		if i%2 == 0 {
			fmt.Fprintf(&b, "    protocol: http1\n    authorities: [%s, %s.default.svc.cluster.local]\n", name, name)
			fmt.Fprintf(&b, "    consistency: session\n    affinity_key: \"path:/users/{key}\"\n    home_regions: \"hash=us-east,eu-west,us-west\"\n")
		} else {
			fmt.Fprintf(&b, "    protocol: grpc\n    consistency: session\n    affinity_key: \"grpc:user-id\"\n    home_regions: \"hash=us-east,eu-west\"\n")
		}
		b.WriteString("    endpoints:\n")
		for ri, r := range regions {
			fmt.Fprintf(&b, "      %s: [", r)
			for e := range 3 {
				if e > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "{address: \"10.%d.%d.%d:8080\", zone: %s-%c}", ri, i, 10+e, r, 'a'+e)
			}
			b.WriteString("]\n")
		}
	}
	return os.WriteFile(filepath.Join(dir, "geode.yaml"), []byte(b.String()), 0o644)
}
