package affinity

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

var testRegions = []string{"us-east", "eu-west", "us-west", "ap-south", "eu-central"}

func mustDirectory(t testing.TB, cfg DirectoryConfig) *Directory {
	t.Helper()
	d, err := NewDirectory(cfg, testRegions, 0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDirectoryHome(t *testing.T) {
	d := mustDirectory(t, DirectoryConfig{
		Table:    map[string]string{"alice": "us-west", "eu-bob": "us-east"},
		Prefixes: []PrefixRule{{Prefix: "eu-", Region: "eu-west"}, {Prefix: "eu-de-", Region: "eu-central"}, {Prefix: "us-", Region: "us-east"}},
		Hash:     []string{"us-east", "eu-west"},
	})
	for _, tc := range []struct{ key, want string }{
		{"alice", "us-west"},           // table
		{"eu-bob", "us-east"},          // table beats a matching prefix
		{"eu-carol", "eu-west"},        // prefix
		{"eu-de-dave", "eu-central"},   // longest prefix wins, whatever the config order
		{"us-erin", "us-east"},         // prefix
		{"eu", "x"},                    // no prefix matches: hashed (checked below)
		{"zed", "x"},                   // hashed
		{"alice2", "x"},                // a table key's extension is not the table key
		{"", "x"},                      // the empty key is hashed too
		{"EU-frank", "x"},              // prefixes are case-sensitive
		{"eu-de-dave", "eu-central"},   // again: from the cache
		{"alice", "us-west"},           // again: from the cache
		{"eu-carol", "eu-west"},        // again: from the cache
		{"us-erin", "us-east"},         // again: from the cache
		{"eu-bob", "us-east"},          // again: from the cache
		{"eu-de-", "eu-central"},       // a key equal to the prefix matches it
		{"eu-d", "eu-west"},            // shorter than the longer prefix
		{"us-", "us-east"},             // equal to the prefix
		{"u", "x"},                     // shorter than every prefix
		{"eu-de-dave-2", "eu-central"}, // longer key, same prefix
	} {
		want := tc.want
		if want == "x" {
			want = hrwReference([]string{"us-east", "eu-west"}, tc.key)
		}
		got, ok := d.Home(tc.key)
		if !ok || got != want {
			t.Errorf("Home(%q) = %q, %v; want %q, true", tc.key, got, ok, want)
		}
	}
}

func TestDirectoryWithoutHash(t *testing.T) {
	d := mustDirectory(t, DirectoryConfig{Table: map[string]string{"alice": "us-west"}, Prefixes: []PrefixRule{{Prefix: "eu-", Region: "eu-west"}}})
	for range 2 { // twice: the miss is cached too
		if got, ok := d.Home("bob"); ok || got != "" {
			t.Fatalf("Home(bob) = %q, %v; want no home", got, ok)
		}
		if got, ok := d.Home("eu-bob"); !ok || got != "eu-west" {
			t.Fatalf("Home(eu-bob) = %q, %v", got, ok)
		}
	}
}

func TestNewDirectoryErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     DirectoryConfig
		size    int
		wantErr []string
	}{
		{"empty", DirectoryConfig{}, 0, []string{"directory: empty"}},
		{"empty maps and slices", DirectoryConfig{Table: map[string]string{}, Prefixes: []PrefixRule{}, Hash: []string{}}, 0, []string{"directory: empty"}},
		{"unknown table region", DirectoryConfig{Table: map[string]string{"alice": "mars-1"}}, 0, []string{`table entry "alice": unknown region "mars-1"`}},
		{"empty table key", DirectoryConfig{Table: map[string]string{"": "us-east"}}, 0, []string{`table entry with an empty key (region "us-east")`}},
		{"unknown prefix region", DirectoryConfig{Prefixes: []PrefixRule{{"eu-", "eu-west"}, {"ap-", "ap-north"}}}, 0, []string{`prefix rule 1 "ap-": unknown region "ap-north"`}},
		{"empty prefix", DirectoryConfig{Prefixes: []PrefixRule{{"", "eu-west"}}}, 0, []string{"prefix rule 0 (region \"eu-west\"): empty prefix"}},
		{"duplicate prefix", DirectoryConfig{Prefixes: []PrefixRule{{"eu-", "eu-west"}, {"eu-", "eu-central"}}}, 0, []string{`prefix rule 1: prefix "eu-" listed twice`}},
		{"unknown hash region", DirectoryConfig{Hash: []string{"us-east", "moon"}}, 0, []string{`hash region 1: unknown region "moon"`}},
		{"duplicate hash region", DirectoryConfig{Hash: []string{"us-east", "us-east"}}, 0, []string{`hash region 1: region "us-east" listed twice`}},
		{"every problem reported", DirectoryConfig{Table: map[string]string{"a": "x1"}, Hash: []string{"x2"}}, 0, []string{`"a": unknown region "x1"`, `unknown region "x2"`}},
		{"negative cache", DirectoryConfig{Hash: []string{"us-east"}}, -1, []string{"cache size -1 is negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDirectory(tc.cfg, testRegions, tc.size)
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// hrwReference is rendezvous hashing written from the doc comment of Directory.Home with
// the standard library's FNV, independent of the implementation.
func hrwReference(regions []string, key string) string {
	best, bestScore := "", uint64(0)
	for _, r := range regions {
		h := fnv.New64a()
		h.Write([]byte(r + "\x00" + key))
		z := h.Sum64()
		z ^= z >> 30
		z *= 0xbf58476d1ce4e5b9
		z ^= z >> 27
		z *= 0x94d049bb133111eb
		z ^= z >> 31
		if best == "" || z > bestScore || z == bestScore && r < best {
			best, bestScore = r, z
		}
	}
	return best
}

func TestRendezvousScoreIsTheDocumentedFunction(t *testing.T) {
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i)
		for _, r := range testRegions {
			h := fnv.New64a()
			h.Write([]byte(r + "\x00" + key))
			if got, want := RendezvousScore(r, key), splitmix64(h.Sum64()); got != want {
				t.Fatalf("RendezvousScore(%q, %q) = %x, want %x", r, key, got, want)
			}
		}
	}
	// Known answer for the finaliser: SplitMix64 seeded with 0 first outputs the
	// finaliser of its increment, 0x9e3779b97f4a7c15.
	if got := splitmix64(0x9e3779b97f4a7c15); got != 0xe220a8397b1dcdaf {
		t.Fatalf("splitmix64 finaliser = %#x, want 0xe220a8397b1dcdaf", got)
	}
	// Golden values: a wire contract every sidecar (and other implementations) must keep.
	for _, tc := range []struct {
		region, key string
		want        uint64
	}{
		{"us-east", "alice", 0x5b1113327cedbd3d},
		{"eu-west", "alice", 0x64f7c36a599a47f4},
		{"us-west", "bob", 0x73b5cd987c165386},
		{"eu-west", "", 0xaa09f439dabf913b},
		{"ap-south", "tenant-42", 0x579bd6a601999dd5},
	} {
		if got := RendezvousScore(tc.region, tc.key); got != tc.want {
			t.Errorf("RendezvousScore(%q, %q) = %#x, want %#x", tc.region, tc.key, got, tc.want)
		}
	}
}

func TestDirectoryHashMatchesReference(t *testing.T) {
	hash := []string{"us-west", "us-east", "eu-west", "ap-south"}
	d := mustDirectory(t, DirectoryConfig{Hash: hash})
	counts := map[string]int{}
	for i := range 10_000 {
		key := fmt.Sprintf("user-%d", i)
		got, ok := d.Home(key)
		if want := hrwReference(hash, key); !ok || got != want {
			t.Fatalf("Home(%q) = %q, want %q", key, got, want)
		}
		counts[got]++
	}
	for _, r := range hash { // a fair spread: 2500 each, give or take 10%
		if n := counts[r]; n < 2250 || n > 2750 {
			t.Errorf("region %s got %d of 10000 keys, want about 2500 (%v)", r, n, counts)
		}
	}
	// Order of the hash regions does not matter.
	d2 := mustDirectory(t, DirectoryConfig{Hash: []string{"ap-south", "eu-west", "us-east", "us-west"}})
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i)
		a, _ := d.Home(key)
		b, _ := d2.Home(key)
		if a != b {
			t.Fatalf("Home(%q) depends on the order of hash regions: %q vs %q", key, a, b)
		}
	}
}

func TestDirectoryHashMovesFewKeys(t *testing.T) {
	four := []string{"us-east", "eu-west", "us-west", "ap-south"}
	homes := func(regions []string) []string {
		d := mustDirectory(t, DirectoryConfig{Hash: regions})
		out := make([]string, 10_000)
		for i := range out {
			out[i], _ = d.Home(fmt.Sprintf("key-%d", i))
		}
		return out
	}
	before := homes(four)

	t.Run("removing a region moves only its keys", func(t *testing.T) {
		after := homes([]string{"us-east", "eu-west", "ap-south"}) // us-west removed
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				if before[i] != "us-west" {
					t.Fatalf("key-%d moved from %s to %s, but only us-west was removed", i, before[i], after[i])
				}
			} else if before[i] == "us-west" {
				t.Fatalf("key-%d still homed in the removed region", i)
			}
		}
		if moved < 2000 || moved > 3000 {
			t.Errorf("%d keys moved, want about 2500", moved)
		}
	})
	t.Run("adding a fifth region moves about a fifth of the keys, all to it", func(t *testing.T) {
		after := homes(append(four[:4:4], "eu-central"))
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				if after[i] != "eu-central" {
					t.Fatalf("key-%d moved from %s to %s, want only moves to the new region", i, before[i], after[i])
				}
			}
		}
		if f := float64(moved) / float64(len(before)); f < 0.15 || f > 0.25 {
			t.Errorf("%.1f%% of keys moved, want 20%% ± 5%%", 100*f)
		}
	})
}

func TestDirectoryCacheHitDoesNotAllocate(t *testing.T) {
	d := mustDirectory(t, DirectoryConfig{Prefixes: []PrefixRule{{"eu-", "eu-west"}}, Hash: []string{"us-east", "eu-west", "us-west"}})
	for _, key := range []string{"alice", "eu-bob"} {
		d.Home(key) // warm
		if n := testing.AllocsPerRun(1000, func() { d.Home(key) }); n != 0 {
			t.Errorf("Home(%q) on a warm key allocates %v times, want 0", key, n)
		}
	}
}

func TestDirectoryCacheIsBounded(t *testing.T) {
	for _, tc := range []struct{ size, want int }{{10, 10}, {0, DefaultDirectoryCacheSize}} {
		d, err := NewDirectory(DirectoryConfig{Hash: []string{"us-east", "eu-west"}}, testRegions, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.want + 100 {
			d.Home(fmt.Sprint(i))
		}
		if n := d.cache.Len(); n != tc.want {
			t.Fatalf("cache size %d: cache holds %d keys, want %d", tc.size, n, tc.want)
		}
	}
}

func TestDirectoryCacheDoesNotKeepRequestMemory(t *testing.T) {
	d := mustDirectory(t, DirectoryConfig{Hash: []string{"us-east", "eu-west"}})
	path := "/users/alice/orders"
	key := path[len("/users/") : len(path)-len("/orders")]
	d.Home(key)
	keys := d.cache.Keys()
	if len(keys) != 1 || keys[0] != "alice" {
		t.Fatalf("cache keys = %q", keys)
	}
	if unsafe.StringData(keys[0]) == unsafe.StringData(key) {
		t.Fatal("the cache keeps a substring of the caller's string, want a copy")
	}
}

func TestDirectoryConcurrentHome(t *testing.T) {
	d, err := NewDirectory(DirectoryConfig{Hash: []string{"us-east", "eu-west", "us-west"}}, testRegions, 64)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := fmt.Sprint((i * (g + 1)) % 500)
				if got, _ := d.Home(key); got != hrwReference([]string{"us-east", "eu-west", "us-west"}, key) {
					t.Errorf("Home(%q) = %q under concurrency", key, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestParseHomeRegions(t *testing.T) {
	known := []string{"us-east", "eu-west", "us-west"}
	for _, tc := range []struct {
		name    string
		in      string
		want    DirectoryConfig
		wantErr string
	}{
		{name: "all three", in: "table=alice:us-east,bob:eu-west;prefix=eu-:eu-west,us-:us-east;hash=us-east,eu-west,us-west", want: DirectoryConfig{
			Table:    map[string]string{"alice": "us-east", "bob": "eu-west"},
			Prefixes: []PrefixRule{{"eu-", "eu-west"}, {"us-", "us-east"}},
			Hash:     []string{"us-east", "eu-west", "us-west"},
		}},
		{name: "hash only", in: "hash=us-east,eu-west", want: DirectoryConfig{Hash: []string{"us-east", "eu-west"}}},
		{name: "spaces and trailing separators", in: " prefix = eu-:eu-west , ; hash= us-west ;", want: DirectoryConfig{Prefixes: []PrefixRule{{"eu-", "eu-west"}}, Hash: []string{"us-west"}}},
		{name: "key with a colon", in: "table=urn:user:1:eu-west", want: DirectoryConfig{Table: map[string]string{"urn:user:1": "eu-west"}}},
		{name: "empty annotation", in: "", wantErr: "directory: empty"},
		{name: "clause without =", in: "hash", wantErr: `clause "hash": want <table|prefix|hash>=<list>`},
		{name: "unknown clause", in: "hash=us-east;default=eu-west", wantErr: `clause "default=eu-west": unknown clause "default"`},
		{name: "clause twice", in: "hash=us-east;hash=eu-west", wantErr: `clause "hash=eu-west": hash given twice`},
		{name: "empty list", in: "table=", wantErr: `clause "table=": empty table list`},
		{name: "table entry without region", in: "table=alice", wantErr: `clause "table=alice": entry "alice": want <key>:<region>`},
		{name: "table entry with empty region", in: "table=alice:", wantErr: `entry "alice:": want <key>:<region>`},
		{name: "prefix entry with empty prefix", in: "prefix=:eu-west", wantErr: `clause "prefix=:eu-west": entry ":eu-west": want <prefix>:<region>`},
		{name: "unknown table region", in: "table=alice:mars", wantErr: `clause "table=alice:mars": entry "alice:mars": unknown region "mars"`},
		{name: "unknown hash region", in: "hash=us-east,moon", wantErr: `clause "hash=us-east,moon": unknown region "moon"`},
		{name: "duplicate table key", in: "table=alice:us-east,alice:eu-west", wantErr: `key "alice" listed twice`},
		{name: "duplicate prefix", in: "prefix=eu-:us-east,eu-:eu-west", wantErr: `prefix "eu-" listed twice`},
		{name: "duplicate hash region", in: "hash=us-east,us-east", wantErr: `region "us-east" listed twice`},
		{name: "several bad clauses", in: "table=a;hash=moon", wantErr: `clause "hash=moon": unknown region "moon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHomeRegions(tc.in, known)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParseHomeRegions(got.String(), known)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("String() %q does not round-trip: %+v, %v", got.String(), again, err)
			}
			if _, err := NewDirectory(got, known, 0); err != nil {
				t.Fatalf("NewDirectory of a parsed config: %v", err)
			}
		})
	}
}

func BenchmarkDirectoryHome(b *testing.B) {
	d := mustDirectory(b, DirectoryConfig{Hash: []string{"us-east", "eu-west", "us-west", "ap-south"}})
	b.Run("hit", func(b *testing.B) {
		d.Home("alice")
		b.ReportAllocs()
		for b.Loop() {
			d.Home("alice")
		}
	})
	b.Run("miss", func(b *testing.B) {
		keys := make([]string, 4096)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		d.cache.Resize(16)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Home(keys[i%len(keys)])
			i++
		}
	})
}

func FuzzParseHomeRegions(f *testing.F) {
	for _, s := range []string{"table=alice:us-east,bob:eu-west;prefix=eu-:eu-west;hash=us-east,eu-west", "table=urn:x:eu-west", "hash=", ";;"} {
		f.Add(s)
	}
	known := []string{"us-east", "eu-west", "us-west"}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseHomeRegions(s, known)
		if err != nil {
			return
		}
		if _, err := NewDirectory(cfg, known, 0); err != nil {
			t.Fatalf("%q parsed into a config NewDirectory refuses: %v", s, err)
		}
		if again, err := ParseHomeRegions(cfg.String(), known); err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("%q: String() %q does not round-trip: %+v, %v", s, cfg.String(), again, err)
		}
	})
}
