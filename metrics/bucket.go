package metrics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sort"

	"github.com/drainpipe/drainpipe/logline"
)

// ErrChecksum reports a stored bucket whose bytes do not match their
// checksum: the storage under it corrupted them.
var ErrChecksum = errors.New("checksum mismatch: corrupt bucket")

// Gauges holds one dyno's runtime samples in a bucket, indexed by
// logline.Gauge.
type Gauges [logline.NumGauges]Stat

// Merge adds o's samples to g.
func (g *Gauges) Merge(o *Gauges) {
	for i := range g {
		g[i].Merge(&o[i])
	}
}

// Custom is one l2met custom metric name in a bucket. One name may be
// used with several kinds (count#hits and measure#hits); each kind keeps
// its own aggregate, so none is lost.
type Custom struct {
	// Kinds has bit 1<<kind set for every logline.CustomKind seen.
	Kinds uint8
	// Count metrics use Total; sample metrics use Stat; measure metrics use
	// Dist.
	Total float64
	Stat  Stat
	Dist  Dist
}

// Has reports whether the metric was seen with kind k.
func (c *Custom) Has(k logline.CustomKind) bool { return c.Kinds&(1<<k) != 0 }

// Merge adds o to c.
func (c *Custom) Merge(o *Custom) {
	c.Kinds |= o.Kinds
	c.Total += o.Total
	c.Stat.Merge(&o.Stat)
	c.Dist.Merge(&o.Dist)
}

// MaxCustomPerBucket bounds the custom metric names one minute bucket
// keeps, so an app that logs unbounded names cannot grow a bucket without
// limit. Names beyond it are counted in the log-loss series as
// "rejected.custom_limit". Merging (rollups) does not drop names.
const MaxCustomPerBucket = 200

// Bucket is everything drainpipe keeps for one app's process type over one
// time bucket. The zero value is empty; maps are created on first use.
type Bucket struct {
	// Requests counts router request lines, with or without a status.
	Requests int64
	// Service and Connect are the router's service and connect times in ms.
	Service Dist
	Connect Dist
	// Status counts requests per HTTP status code.
	Status map[int]int64
	// HCodes counts router errors per H code; RCodes dyno errors per R code.
	HCodes map[string]int64
	RCodes map[string]int64
	// Dynos holds runtime samples per dyno source ("web.1").
	Dynos map[string]*Gauges
	// LogLoss counts lost or rejected lines by reason ("L10",
	// "rejected.malformed", ...).
	LogLoss map[string]int64
	// Custom holds l2met custom metrics by name.
	Custom map[string]*Custom
}

// Empty reports whether nothing was recorded in b.
func (b *Bucket) Empty() bool {
	return b.Requests == 0 && b.Service.Count == 0 && b.Connect.Count == 0 &&
		len(b.Status) == 0 && len(b.HCodes) == 0 && len(b.RCodes) == 0 &&
		len(b.Dynos) == 0 && len(b.LogLoss) == 0 && len(b.Custom) == 0
}

// Count5xx returns the number of requests answered with a 5xx status.
func (b *Bucket) Count5xx() int64 {
	var n int64
	for code, c := range b.Status {
		if code >= 500 && code <= 599 {
			n += c
		}
	}
	return n
}

// AddStatus counts one request with the given status (0 = none given).
func (b *Bucket) AddStatus(status int) {
	b.Requests++
	if status <= 0 {
		return
	}
	if b.Status == nil {
		b.Status = make(map[int]int64, 4)
	}
	b.Status[status]++
}

// AddCode counts one occurrence of an error code in m (HCodes or RCodes).
// An assignment m[string(code)] would allocate the key string on every
// call, so a known code is updated under the key already stored; the maps
// hold a handful of codes, so the scan costs less than that allocation.
func addCode(m *map[string]int64, code []byte, n int64) {
	if *m == nil {
		*m = make(map[string]int64, 2)
	}
	if _, ok := (*m)[string(code)]; ok {
		for k := range *m {
			if k == string(code) {
				(*m)[k] += n
				return
			}
		}
	}
	(*m)[string(code)] = n
}

// AddHCode counts a router error code.
func (b *Bucket) AddHCode(code []byte) { addCode(&b.HCodes, code, 1) }

// AddRCode counts a dyno error code.
func (b *Bucket) AddRCode(code []byte) { addCode(&b.RCodes, code, 1) }

// AddLogLoss counts n lost or rejected lines under reason.
func (b *Bucket) AddLogLoss(reason []byte, n int64) { addCode(&b.LogLoss, reason, n) }

// Dyno returns the gauges of the named dyno, creating them when missing.
func (b *Bucket) Dyno(source []byte) *Gauges {
	if g, ok := b.Dynos[string(source)]; ok {
		return g
	}
	if b.Dynos == nil {
		b.Dynos = make(map[string]*Gauges, 4)
	}
	g := new(Gauges)
	b.Dynos[string(source)] = g
	return g
}

// CustomMetric returns the named custom metric, marked as seen with kind,
// creating it when missing; it returns nil when the bucket already holds
// MaxCustomPerBucket names.
func (b *Bucket) CustomMetric(name []byte, kind logline.CustomKind) *Custom {
	c, ok := b.Custom[string(name)]
	if !ok {
		if len(b.Custom) >= MaxCustomPerBucket {
			return nil
		}
		if b.Custom == nil {
			b.Custom = make(map[string]*Custom, 4)
		}
		c = new(Custom)
		b.Custom[string(name)] = c
	}
	c.Kinds |= 1 << kind
	return c
}

// Merge adds everything in o to b. Merging is exact, commutative and
// associative, which is what lets late data, several dynos and coarser
// steps be folded together in any order.
func (b *Bucket) Merge(o *Bucket) {
	if o == nil {
		return
	}
	b.Requests += o.Requests
	b.Service.Merge(&o.Service)
	b.Connect.Merge(&o.Connect)
	mergeCounts(&b.Status, o.Status)
	mergeCounts(&b.HCodes, o.HCodes)
	mergeCounts(&b.RCodes, o.RCodes)
	mergeCounts(&b.LogLoss, o.LogLoss)
	for k, g := range o.Dynos {
		if b.Dynos == nil {
			b.Dynos = make(map[string]*Gauges, len(o.Dynos))
		}
		mine, ok := b.Dynos[k]
		if !ok {
			mine = new(Gauges)
			b.Dynos[k] = mine
		}
		mine.Merge(g)
	}
	for k, c := range o.Custom {
		if b.Custom == nil {
			b.Custom = make(map[string]*Custom, len(o.Custom))
		}
		mine, ok := b.Custom[k]
		if !ok {
			mine = new(Custom)
			b.Custom[k] = mine
		}
		mine.Merge(c)
	}
}

func mergeCounts[K comparable](dst *map[K]int64, src map[K]int64) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = make(map[K]int64, len(src))
	}
	for k, v := range src {
		(*dst)[k] += v
	}
}

// GaugeStat merges one gauge over the dynos in b; when dyno is non-empty
// only that dyno counts. The dynos are merged in name order: a sum of
// floats depends on its order, and map order would make two answers of
// the same query differ in their last digits.
func (b *Bucket) GaugeStat(g logline.Gauge, dyno string) Stat {
	var s Stat
	if dyno != "" {
		if gs := b.Dynos[dyno]; gs != nil {
			s.Merge(&gs[g])
		}
		return s
	}
	var buf [16]string
	names := buf[:0]
	for name := range b.Dynos {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.Merge(&b.Dynos[name][g])
	}
	return s
}

// encodingVersion 2: own sketch encoding and a CRC-32C trailer.
const encodingVersion = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode appends b's binary encoding to dst. Map entries are written in
// sorted key order so equal buckets encode to equal bytes.
func (b *Bucket) Encode(dst []byte) []byte {
	e := encoder{b: dst}
	e.uvarint(encodingVersion)
	e.uvarint(uint64(b.Requests))
	b.Service.encode(&e)
	b.Connect.encode(&e)
	codes := make([]int, 0, len(b.Status))
	for k := range b.Status {
		codes = append(codes, k)
	}
	sort.Ints(codes)
	e.uvarint(uint64(len(codes)))
	for _, k := range codes {
		e.uvarint(uint64(k))
		e.uvarint(uint64(b.Status[k]))
	}
	encodeCounts(&e, b.HCodes)
	encodeCounts(&e, b.RCodes)
	encodeCounts(&e, b.LogLoss)
	names := sortedKeys(b.Dynos)
	e.uvarint(uint64(len(names)))
	for _, n := range names {
		e.str(n)
		g := b.Dynos[n]
		for i := range g {
			g[i].encode(&e)
		}
	}
	names = sortedKeys(b.Custom)
	e.uvarint(uint64(len(names)))
	for _, n := range names {
		c := b.Custom[n]
		e.str(n)
		e.uvarint(uint64(c.Kinds))
		e.float(c.Total)
		c.Stat.encode(&e)
		c.Dist.encode(&e)
	}
	return binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b[len(dst):], castagnoli))
}

func encodeCounts(e *encoder, m map[string]int64) {
	keys := sortedKeys(m)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.varint(m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Part names one part of a bucket, for DecodeParts. Requests are always
// decoded.
type Part uint16

// The parts of a bucket.
const (
	PartService Part = 1 << iota // Service
	PartConnect                  // Connect
	PartStatus                   // Status
	PartHCodes                   // HCodes
	PartRCodes                   // RCodes
	PartLogLoss                  // LogLoss
	PartDynos                    // Dynos
	PartCustom                   // Custom
	// AllParts is every part: what Decode reads.
	AllParts Part = 1<<iota - 1
)

// Decode parses an encoding made by Encode into a fresh Bucket. Corrupt
// input returns an error, never a partly filled bucket.
func Decode(p []byte) (*Bucket, error) { return DecodeParts(p, AllParts) }

// DecodeParts is Decode that fills only the parts in parts and leaves the
// others zero. The checksum is verified over the whole encoding, and the
// parts left out are stepped over (the encoding has no section lengths, so
// their varints are scanned, not parsed into values or maps): a query
// that reads two sketches need not build a bucket's maps and gauges.
// Skipped sketches are not checked against their counts; the checksum
// still guards them against corruption in storage.
func DecodeParts(p []byte, parts Part) (*Bucket, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("decode bucket: %w", errShort)
	}
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("decode bucket: %w", ErrChecksum)
	}
	r := decoder{b: body}
	if v := r.uvarint(); v != encodingVersion {
		if r.err != nil {
			return nil, fmt.Errorf("decode bucket: %w", r.err)
		}
		return nil, fmt.Errorf("decode bucket: unknown encoding version %d", v)
	}
	b := &Bucket{Requests: int64(r.uvarint())}
	if parts&PartService != 0 {
		if err := b.Service.decode(&r); err != nil {
			return nil, fmt.Errorf("decode bucket service: %w", err)
		}
	} else {
		skipDist(&r)
	}
	if parts&PartConnect != 0 {
		if err := b.Connect.decode(&r); err != nil {
			return nil, fmt.Errorf("decode bucket connect: %w", err)
		}
	} else {
		skipDist(&r)
	}
	if n := r.count(); n > 0 {
		if parts&PartStatus != 0 {
			b.Status = make(map[int]int64, n)
			for i := 0; i < n && r.err == nil; i++ {
				k := int(r.uvarint())
				b.Status[k] = int64(r.uvarint())
			}
		} else {
			for i := 0; i < n && r.err == nil; i++ {
				r.uvarint()
				r.uvarint()
			}
		}
	}
	b.HCodes = decodeCounts(&r, parts&PartHCodes != 0)
	b.RCodes = decodeCounts(&r, parts&PartRCodes != 0)
	b.LogLoss = decodeCounts(&r, parts&PartLogLoss != 0)
	if n := r.count(); n > 0 {
		keep := parts&PartDynos != 0
		var gs []Gauges
		if keep {
			b.Dynos = make(map[string]*Gauges, n)
			gs = make([]Gauges, n) // one allocation for every dyno's gauges
		}
		for i := 0; i < n && r.err == nil; i++ {
			if !keep {
				r.bytes()
				for range logline.NumGauges {
					skipStat(&r)
				}
				continue
			}
			name := r.str()
			g := &gs[i]
			for j := range g {
				g[j].decode(&r)
			}
			b.Dynos[name] = g
		}
	}
	if n := r.count(); n > 0 {
		keep := parts&PartCustom != 0
		if keep {
			b.Custom = make(map[string]*Custom, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			if !keep {
				r.bytes()
				r.uvarint()
				r.float()
				skipStat(&r)
				skipDist(&r)
				continue
			}
			name := r.str()
			c := &Custom{Kinds: uint8(r.uvarint()), Total: r.float()}
			c.Stat.decode(&r)
			if err := c.Dist.decode(&r); err != nil {
				return nil, fmt.Errorf("decode bucket custom %q: %w", name, err)
			}
			b.Custom[name] = c
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode bucket: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decode bucket: %d trailing bytes", len(r.b))
	}
	return b, nil
}

// skipDist steps over an encoded Dist.
func skipDist(r *decoder) {
	if r.uvarint() == 0 {
		return
	}
	r.skip(3 * 8) // sum, min, max
	r.uvarint()   // zero count
	bins := r.count()
	for i := 0; i < bins && r.err == nil; i++ {
		r.varint()
		r.uvarint()
	}
}

// skipStat steps over an encoded Stat.
func skipStat(r *decoder) {
	if r.uvarint() == 0 {
		return
	}
	r.skip(3 * 8) // sum, max, last
	r.varint()    // last time
}

// decodeCounts reads a map of counts; it steps over them unless keep.
func decodeCounts(r *decoder, keep bool) map[string]int64 {
	n := r.count()
	if n == 0 {
		return nil
	}
	if !keep {
		for i := 0; i < n && r.err == nil; i++ {
			r.bytes()
			r.varint()
		}
		return nil
	}
	m := make(map[string]int64, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.str()
		m[k] = r.varint()
	}
	return m
}
