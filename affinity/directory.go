package affinity

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultDirectoryCacheSize is the number of keys a Directory caches when NewDirectory is
// given a cache size of 0.
const DefaultDirectoryCacheSize = 10_000

// PrefixRule sends every affinity key that starts with Prefix to Region.
type PrefixRule struct {
	Prefix string
	Region string
}

// DirectoryConfig says how affinity keys map to their home regions. A key is looked up
// in Table first, then in Prefixes (the longest matching prefix wins), then hashed over
// Hash (see Directory.Home). At least one of the three must be set. Regions are named,
// not indexed, so the same config holds in every routing state.
type DirectoryConfig struct {
	// Table maps single keys to their home regions.
	Table map[string]string
	// Prefixes map key prefixes to home regions; prefixes must be distinct and non-empty.
	Prefixes []PrefixRule
	// Hash lists the regions keys are spread over by rendezvous hashing when neither the
	// table nor a prefix rule names their home. Order does not matter.
	Hash []string
}

// Validate checks that cfg sets at least one of its parts and names only known regions,
// and returns every problem found, joined.
func (cfg *DirectoryConfig) Validate(knownRegions []string) error {
	if len(cfg.Table) == 0 && len(cfg.Prefixes) == 0 && len(cfg.Hash) == 0 {
		return errors.New("directory: empty: set at least one of table, prefix rules or hash regions")
	}
	var errs []error
	// Sorted for stable error order.
	for _, key := range sortedKeys(cfg.Table) {
		region := cfg.Table[key]
		switch {
		case key == "":
			errs = append(errs, fmt.Errorf("directory: table entry with an empty key (region %q)", region))
		case !slices.Contains(knownRegions, region):
			errs = append(errs, fmt.Errorf("directory: table entry %q: unknown region %q", key, region))
		}
	}
	seen := make(map[string]bool, len(cfg.Prefixes))
	for i, p := range cfg.Prefixes {
		switch {
		case p.Prefix == "":
			errs = append(errs, fmt.Errorf("directory: prefix rule %d (region %q): empty prefix (use hash regions for a default)", i, p.Region))
		case seen[p.Prefix]:
			errs = append(errs, fmt.Errorf("directory: prefix rule %d: prefix %q listed twice", i, p.Prefix))
		case !slices.Contains(knownRegions, p.Region):
			errs = append(errs, fmt.Errorf("directory: prefix rule %d %q: unknown region %q", i, p.Prefix, p.Region))
		}
		seen[p.Prefix] = true
	}
	for i, r := range cfg.Hash {
		switch {
		case !slices.Contains(knownRegions, r):
			errs = append(errs, fmt.Errorf("directory: hash region %d: unknown region %q", i, r))
		case slices.Contains(cfg.Hash[:i], r):
			errs = append(errs, fmt.Errorf("directory: hash region %d: region %q listed twice", i, r))
		}
	}
	return errors.Join(errs...)
}

// String formats cfg in the geode.io/home-regions annotation form (see ParseHomeRegions),
// table entries sorted by key; ParseHomeRegions of the result gives back an equal config.
func (cfg *DirectoryConfig) String() string {
	var clauses []string
	if len(cfg.Table) > 0 {
		var b strings.Builder
		for i, k := range sortedKeys(cfg.Table) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k + ":" + cfg.Table[k])
		}
		clauses = append(clauses, "table="+b.String())
	}
	if len(cfg.Prefixes) > 0 {
		parts := make([]string, len(cfg.Prefixes))
		for i, p := range cfg.Prefixes {
			parts[i] = p.Prefix + ":" + p.Region
		}
		clauses = append(clauses, "prefix="+strings.Join(parts, ","))
	}
	if len(cfg.Hash) > 0 {
		clauses = append(clauses, "hash="+strings.Join(cfg.Hash, ","))
	}
	return strings.Join(clauses, ";")
}

// Directory maps affinity keys to their home regions (see Home). It is safe for
// concurrent use: the rules are immutable and the cache has its own lock.
type Directory struct {
	table    map[string]string
	prefixes []PrefixRule // longest prefix first
	hash     []hashRegion // sorted by name
	cache    *lru.Cache[string, string]
}

// hashRegion is a hash region with its FNV-1a state after hashing name+"\x00".
type hashRegion struct {
	name string
	seed uint64
}

// NewDirectory builds a directory from a config whose regions must all be in
// knownRegions. Lookups are cached in an LRU of cacheSize keys; 0 means
// DefaultDirectoryCacheSize.
func NewDirectory(cfg DirectoryConfig, knownRegions []string, cacheSize int) (*Directory, error) {
	if cacheSize < 0 {
		return nil, fmt.Errorf("directory: cache size %d is negative", cacheSize)
	}
	if cacheSize == 0 {
		cacheSize = DefaultDirectoryCacheSize
	}
	if err := cfg.Validate(knownRegions); err != nil {
		return nil, err
	}
	cache, err := lru.New[string, string](cacheSize)
	if err != nil {
		return nil, fmt.Errorf("directory: cache: %w", err)
	}
	d := &Directory{
		table:    make(map[string]string, len(cfg.Table)),
		prefixes: slices.Clone(cfg.Prefixes),
		cache:    cache,
	}
	maps.Copy(d.table, cfg.Table)
	// Longest first, then by prefix so that the order does not depend on the config's.
	slices.SortFunc(d.prefixes, func(a, b PrefixRule) int {
		if n := len(b.Prefix) - len(a.Prefix); n != 0 {
			return n
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	for _, r := range cfg.Hash {
		d.hash = append(d.hash, hashRegion{name: r, seed: fnv1a(fnv1a(fnvOffset64, r), "\x00")})
	}
	slices.SortFunc(d.hash, func(a, b hashRegion) int { return strings.Compare(a.name, b.name) })
	return d, nil
}

// Home returns the home region of key: the table's entry for it, else the region of
// the longest prefix rule that matches it, else the hash region with the highest
// rendezvous score. It returns false only when no rule matches and there are no hash
// regions.
//
// The rendezvous score of region R for key K is splitmix64(FNV-1a-64(R + "\x00" + K)),
// where splitmix64 is the finaliser z ^= z>>30; z *= 0xbf58476d1ce4e5b9; z ^= z>>27;
// z *= 0x94d049bb133111eb; z ^= z>>31; the highest score wins and equal scores go to the
// region whose name sorts first. Every sidecar computes the same answer from the same
// config, and adding or removing one of N hash regions moves only about 1/N of the keys
// (removing a region moves exactly the keys it owned). This function is a wire contract:
// changing it moves data homes across the fleet.
//
// Results are cached; a cached lookup does not allocate.
func (d *Directory) Home(key string) (region string, ok bool) {
	if r, hit := d.cache.Get(key); hit {
		return r, r != ""
	}
	r := d.lookup(key)
	// The key may be a substring of a request's path or header: copy it so the cache
	// does not keep the request's memory alive.
	d.cache.Add(strings.Clone(key), r)
	return r, r != ""
}

// lookup computes the home region of key without the cache; "" when there is none.
func (d *Directory) lookup(key string) string {
	if r, ok := d.table[key]; ok {
		return r
	}
	for _, p := range d.prefixes {
		if strings.HasPrefix(key, p.Prefix) {
			return p.Region
		}
	}
	best, bestScore := "", uint64(0)
	for _, h := range d.hash {
		// Strictly greater: on a tie the earlier (smaller) name keeps the key.
		if s := splitmix64(fnv1a(h.seed, key)); best == "" || s > bestScore {
			best, bestScore = h.name, s
		}
	}
	return best
}

// RendezvousScore returns the rendezvous-hashing score of region for key, as Home
// computes it; exported so other implementations (and operators' tools) can check that
// they agree.
func RendezvousScore(region, key string) uint64 {
	return splitmix64(fnv1a(fnv1a(fnv1a(fnvOffset64, region), "\x00"), key))
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnv1a continues an FNV-1a 64-bit hash whose state is h over the bytes of s.
func fnv1a(h uint64, s string) uint64 {
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// splitmix64 is the SplitMix64 finaliser: it spreads FNV's weak low-entropy bits over
// the whole word so that scores for different regions are independent.
func splitmix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// ParseHomeRegions parses the geode.io/home-regions annotation: ";"-separated clauses,
// each at most once, of
//
//	table=<key>:<region>,<key>:<region>,...    single keys
//	prefix=<prefix>:<region>,...               key prefixes (longest match wins)
//	hash=<region>,<region>,...                 rendezvous hashing over these regions
//
// for example "table=alice:us-east;prefix=eu-:eu-west,us-:us-east;hash=us-east,eu-west".
// A key or prefix ends at its last ":", so it may itself contain ":" but not "," or ";".
// Spaces around clauses and items are ignored. Every region must be in knownRegions.
// Errors name the clause.
func ParseHomeRegions(annotation string, knownRegions []string) (DirectoryConfig, error) {
	var cfg DirectoryConfig
	seen := map[string]bool{}
	var errs []error
	for clause := range strings.SplitSeq(annotation, ";") {
		clause = strings.TrimSpace(clause)
		if clause == "" {
			continue
		}
		name, value, ok := strings.Cut(clause, "=")
		name = strings.TrimSpace(name)
		if !ok {
			errs = append(errs, fmt.Errorf("clause %q: want <table|prefix|hash>=<list>", clause))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("clause %q: %s given twice", clause, name))
			continue
		}
		seen[name] = true
		if err := parseHomeClause(&cfg, name, value, knownRegions); err != nil {
			errs = append(errs, fmt.Errorf("clause %q: %w", clause, err))
		}
	}
	if len(errs) == 0 {
		if err := cfg.Validate(knownRegions); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return DirectoryConfig{}, err
	}
	return cfg, nil
}

// parseHomeClause adds one clause's value to cfg.
func parseHomeClause(cfg *DirectoryConfig, name, value string, knownRegions []string) error {
	items := splitList(value)
	if len(items) == 0 {
		return fmt.Errorf("empty %s list", name)
	}
	switch name {
	case "table", "prefix":
		what := "key"
		if name == "prefix" {
			what = "prefix"
		}
		for _, item := range items {
			i := strings.LastIndexByte(item, ':')
			if i <= 0 || i == len(item)-1 {
				return fmt.Errorf("entry %q: want <%s>:<region>", item, what)
			}
			key, region := strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
			if !slices.Contains(knownRegions, region) {
				return fmt.Errorf("entry %q: unknown region %q", item, region)
			}
			if name == "prefix" {
				if slices.ContainsFunc(cfg.Prefixes, func(p PrefixRule) bool { return p.Prefix == key }) {
					return fmt.Errorf("entry %q: prefix %q listed twice", item, key)
				}
				cfg.Prefixes = append(cfg.Prefixes, PrefixRule{Prefix: key, Region: region})
				continue
			}
			if cfg.Table == nil {
				cfg.Table = map[string]string{}
			}
			if _, dup := cfg.Table[key]; dup {
				return fmt.Errorf("entry %q: key %q listed twice", item, key)
			}
			cfg.Table[key] = region
		}
	case "hash":
		for _, r := range items {
			if !slices.Contains(knownRegions, r) {
				return fmt.Errorf("unknown region %q", r)
			}
			if slices.Contains(cfg.Hash, r) {
				return fmt.Errorf("region %q listed twice", r)
			}
			cfg.Hash = append(cfg.Hash, r)
		}
	default:
		return fmt.Errorf("unknown clause %q, want table, prefix or hash", name)
	}
	return nil
}

// splitList splits a ","-separated list, trimming spaces and dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
