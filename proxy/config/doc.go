// Package config owns the sidecar's static configuration file: its YAML schema, strict
// decoding (unknown fields are errors), defaults, and validation whose errors name the
// field path that is wrong, e.g. `services[2].endpoints: unknown region "eu-wset"`.
//
// It imports nothing from the rest of the sidecar. A Config is a plain value: Load
// returns a new one, nothing mutates it afterwards, and it may be read concurrently.
package config
