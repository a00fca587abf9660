package api

import "testing"

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"Profiles": "profiles", "profiles:8080": "profiles", "profiles.svc.": "profiles.svc", "[::1]:80": "::1"} {
		if got := AuthorityHost(in); got != want {
			t.Errorf("AuthorityHost(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", ":80", "a/b", "user@host", "a b"} {
		if CheckAuthority(bad) == nil {
			t.Errorf("CheckAuthority(%q) accepted", bad)
		}
	}
	if CheckAuthority("profiles.default.svc:8080") != nil {
		t.Error("a host:port authority refused")
	}
	for s, want := range map[string]bool{"us-east": true, "eu-west-2": true, "": false, "-x": false, "US-East": false, "us_east": false} {
		if ValidLocalityName(s) != want {
			t.Errorf("ValidLocalityName(%q) = %v", s, !want)
		}
	}
}

func TestAuthoritiesClaim(t *testing.T) {
	a := Authorities{}
	if err := a.Claim("profiles", "Profiles:8080"); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim("billing", "profiles"); err == nil || err.Error() != `authority "profiles" already belongs to service "profiles"` {
		t.Fatalf("a second claim: %v", err)
	}
	if err := a.Claim("billing", "a/b"); err == nil {
		t.Fatal("a malformed authority was claimed")
	}
}
