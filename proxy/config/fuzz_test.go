package config

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("region: x\n"))
	f.Add([]byte("regions: [{name: a, rtt: {a: 1ms}}]\n"))
	f.Add([]byte("services: [{name: s, endpoints: {x: [\"h:1\"]}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever Parse accepts is valid and complete.
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		if c.Limits.MaxHeaderBytes == 0 || c.Tracing.SampleRatio == nil {
			t.Fatal("defaults not applied")
		}
	})
}
