package metrics

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"slices"
	"strings"

	"github.com/drainpipe/drainpipe/internal/tightslice"
	"github.com/drainpipe/drainpipe/logline"
)

// ErrChecksum reports a stored bucket whose bytes do not match their
// checksum: the storage under it corrupted them.
var ErrChecksum = errors.New("checksum mismatch: corrupt bucket")

// Bucket is everything drainpipe keeps for one app's process type over one
// time bucket. The zero value is empty.
//
// Status codes, error codes, dynos and custom metrics are slices sorted
// by key rather than maps: a bucket usually holds a handful of each, a
// small Go map costs a few hundred bytes, and every bucket touched since
// the last flush is held in memory (BenchmarkStateMemory). They are also
// the encoding's order. Change them through the methods below, which
// keep them sorted.
//
// H and R codes, log loss and custom metrics are read through methods
// (HCodes, RCodes, LogLoss, Custom): most buckets have none of them, so
// they live in a record of their own that only the buckets using them
// allocate (the custom metrics' lists, 80 bytes), and the string counts
// in one of its own again (a bucket with custom metrics but no errors
// does not pay for them). The router's latencies and status counts
// (Service, Connect, Status) live in a record of their own too, which a
// process type without router lines (a worker) never allocates: 144
// bytes less for its buckets, 16 more for a web one's. Use a Bucket
// through a pointer: a copy would share its parts with the original.
type Bucket struct {
	// Requests counts router request lines, with or without a status.
	Requests int64
	// Dynos holds runtime samples per dyno source ("web.1"), by name.
	Dynos []DynoGauges
	// rt holds the router's service and connect times and status counts;
	// nil while all are empty.
	rt *routerPart
	// rare holds the parts most buckets do not use; nil while all are
	// empty.
	rare *bucketRare
}

// routerPart is the part of a Bucket that router lines fill: service and
// connect times in ms, and requests per status code.
type routerPart struct {
	service, connect Dist
	status           StatusCounts
}

// Service returns the router's service times in ms. It is for reading:
// when the bucket has none it is an empty Dist of its own, not the
// bucket's. Add observations with AddService.
func (b *Bucket) Service() *Dist {
	if b.rt == nil {
		return new(Dist)
	}
	return &b.rt.service
}

// Connect returns the router's connect times in ms, for reading as
// Service. Add observations with AddConnect.
func (b *Bucket) Connect() *Dist {
	if b.rt == nil {
		return new(Dist)
	}
	return &b.rt.connect
}

// Status counts requests per HTTP status code, for reading. Count them
// with AddStatus.
func (b *Bucket) Status() StatusCounts {
	if b.rt == nil {
		return StatusCounts{}
	}
	return b.rt.status
}

// router returns b's router part, allocating it on first use.
func (b *Bucket) router() *routerPart {
	if b.rt == nil {
		b.rt = new(routerPart)
	}
	return b.rt
}

func (rt *routerPart) empty() bool {
	return rt.service.Count == 0 && rt.connect.Count == 0 && rt.status.Len() == 0
}

// AddService records one router service time in ms (as Dist.Add).
func (b *Bucket) AddService(ms float64) { b.router().service.Add(ms) }

// AddConnect records one router connect time in ms (as Dist.Add).
func (b *Bucket) AddConnect(ms float64) { b.router().connect.Add(ms) }

// bucketRare is the part of a Bucket that most buckets leave empty:
// custom metrics, and (behind a pointer of their own, as few buckets
// with custom metrics have errors or log loss) the string counts.
type bucketRare struct {
	customs
	codes *bucketCodes
}

// bucketCodes is a Bucket's H codes, R codes and log loss, and the
// custom metrics that the per-kind lists of customs cannot hold (odd,
// see there).
type bucketCodes struct {
	hCodes, rCodes, logLoss Counts[string]
	odd                     []NamedCustom
}

// more returns b's rare part, allocating it on first use.
func (b *Bucket) more() *bucketRare {
	if b.rare == nil {
		b.rare = new(bucketRare)
	}
	return b.rare
}

// moreCodes returns b's string counts, allocating them on first use.
func (b *Bucket) moreCodes() *bucketCodes {
	r := b.more()
	if r.codes == nil {
		r.codes = new(bucketCodes)
	}
	return r.codes
}

// codes returns b's string counts, nil when it has none.
func (b *Bucket) codes() *bucketCodes {
	if b.rare == nil {
		return nil
	}
	return b.rare.codes
}

// HCodes counts router errors per H code.
func (b *Bucket) HCodes() Counts[string] {
	if c := b.codes(); c != nil {
		return c.hCodes
	}
	return nil
}

// RCodes counts dyno errors per R code.
func (b *Bucket) RCodes() Counts[string] {
	if c := b.codes(); c != nil {
		return c.rCodes
	}
	return nil
}

// LogLoss counts lost or rejected lines by reason ("L10",
// "rejected.malformed", ...).
func (b *Bucket) LogLoss() Counts[string] {
	if c := b.codes(); c != nil {
		return c.logLoss
	}
	return nil
}

// Counts is a small map from keys to counts, kept as a slice sorted by
// key.
type Counts[K cmp.Ordered] []KeyCount[K]

// KeyCount is one key's count in Counts.
type KeyCount[K cmp.Ordered] struct {
	Key K
	N   int64
}

// find returns the position of k in c and whether it is there.
func (c Counts[K]) find(k K) (int, bool) {
	// slices.BinarySearchFunc, written out: the closure call per step was
	// a few percent of the router fold, which counts every status here.
	lo, hi := 0, len(c)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if cmp.Less(c[h].Key, k) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(c) && cmp.Compare(c[lo].Key, k) == 0
}

// Get returns k's count, 0 when absent.
func (c Counts[K]) Get(k K) int64 {
	if i, ok := c.find(k); ok {
		return c[i].N
	}
	return 0
}

// Add adds n to k's count.
func (c *Counts[K]) Add(k K, n int64) {
	i, ok := c.find(k)
	if ok {
		(*c)[i].N += n
		return
	}
	*c = slices.Insert(*c, i, KeyCount[K]{Key: k, N: n})
}

// All yields every key and its count, in key order.
func (c Counts[K]) All() iter.Seq2[K, int64] {
	return func(yield func(K, int64) bool) {
		for _, e := range c {
			if !yield(e.Key, e.N) {
				return
			}
		}
	}
}

// Total returns the sum of the counts.
func (c Counts[K]) Total() int64 {
	var n int64
	for _, e := range c {
		n += e.N
	}
	return n
}

// merge adds o's counts to c.
func (c *Counts[K]) merge(o Counts[K]) { *c, _ = mergeSorted(*c, o) }

// cmpKey compares e's key with o's.
func (e KeyCount[K]) cmpKey(o KeyCount[K]) int { return cmp.Compare(e.Key, o.Key) }

// plus returns e with o's count added.
func (e KeyCount[K]) plus(o KeyCount[K]) (KeyCount[K], bool) {
	return KeyCount[K]{Key: e.Key, N: e.N + o.N}, true
}

// sortedCount is an entry of a slice of counts sorted by key.
type sortedCount[E any] interface {
	// cmpKey compares the entry's key with o's.
	cmpKey(o E) int
	// plus returns the entry with o's count added; false when the sum
	// does not fit.
	plus(o E) (E, bool)
}

// mergeSorted adds o's counts to a's: in place, from the back, after
// counting the keys a lacks (none, mostly, when minutes roll up). It
// reports false, changing nothing, when a sum does not fit.
func mergeSorted[E sortedCount[E]](a, o []E) ([]E, bool) {
	if len(o) == 0 {
		return a, true
	}
	added := 0
	for i, j := 0, 0; j < len(o); {
		c := 1
		if i < len(a) {
			c = a[i].cmpKey(o[j])
		}
		switch {
		case c < 0:
			i++
		case c == 0:
			if _, ok := a[i].plus(o[j]); !ok {
				return a, false
			}
			i, j = i+1, j+1
		default:
			added, j = added+1, j+1
		}
	}
	out := slices.Grow(a, added)[:len(a)+added]
	i, j := len(a)-1, len(o)-1
	for k := len(out) - 1; j >= 0; k-- {
		c := -1
		if i >= 0 {
			c = a[i].cmpKey(o[j])
		}
		switch {
		case c > 0:
			out[k] = a[i]
			i--
		case c == 0:
			out[k], _ = a[i].plus(o[j])
			i, j = i-1, j-1
		default:
			out[k] = o[j]
			j--
		}
	}
	return out, true
}

// addBytes adds n to the count of the string key k without allocating
// unless k is new.
func addBytes(c *Counts[string], k []byte, n int64) {
	i := findBytes(len(*c), func(i int) string { return (*c)[i].Key }, k)
	if i < len(*c) && (*c)[i].Key == string(k) {
		(*c)[i].N += n
		return
	}
	*c = slices.Insert(*c, i, KeyCount[string]{Key: string(k), N: n})
}

// findBytes returns the first of n names, sorted, that is not below k.
func findBytes(n int, name func(int) string, k []byte) int {
	lo, hi := 0, n
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if name(h) < string(k) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// DynoGauges is one dyno's runtime samples in a bucket.
type DynoGauges struct {
	Name   string
	Gauges Gauges
}

// Empty reports whether nothing was recorded in b.
func (b *Bucket) Empty() bool {
	return b.Requests == 0 && (b.rt == nil || b.rt.empty()) &&
		len(b.HCodes()) == 0 && len(b.RCodes()) == 0 &&
		len(b.Dynos) == 0 && len(b.LogLoss()) == 0 && !b.hasCustom()
}

// Count5xx returns the number of requests answered with a 5xx status.
func (b *Bucket) Count5xx() int64 {
	return b.Status().count5xx()
}

// AddStatus counts one request with the given status (0 = none given).
func (b *Bucket) AddStatus(status int) {
	b.Requests++
	if status <= 0 {
		return
	}
	b.router().status.add(status, 1)
}

// AddHCode counts a router error code.
func (b *Bucket) AddHCode(code []byte) { addBytes(&b.moreCodes().hCodes, code, 1) }

// AddRCode counts a dyno error code.
func (b *Bucket) AddRCode(code []byte) { addBytes(&b.moreCodes().rCodes, code, 1) }

// AddLogLoss counts n lost or rejected lines under reason.
func (b *Bucket) AddLogLoss(reason []byte, n int64) { addBytes(&b.moreCodes().logLoss, reason, n) }

// Dyno returns the gauges of the named dyno, creating them when missing.
// The pointer is valid until the next dyno is added to b.
func (b *Bucket) Dyno(source []byte) *Gauges {
	i := findBytes(len(b.Dynos), func(i int) string { return b.Dynos[i].Name }, source)
	if i < len(b.Dynos) && b.Dynos[i].Name == string(source) {
		return &b.Dynos[i].Gauges
	}
	b.Dynos = tightslice.Insert(b.Dynos, i, DynoGauges{Name: string(source)})
	return &b.Dynos[i].Gauges
}

// DynoNamed is Dyno for a name held as a string, which b keeps (rather
// than a copy) when it adds the dyno: the aggregator passes the copy its
// name limits hold.
func (b *Bucket) DynoNamed(name string) *Gauges {
	i, ok := b.dynoIndex(name)
	if !ok {
		b.Dynos = tightslice.Insert(b.Dynos, i, DynoGauges{Name: name})
	}
	return &b.Dynos[i].Gauges
}

func (b *Bucket) dynoIndex(name string) (int, bool) {
	return slices.BinarySearchFunc(b.Dynos, name, func(d DynoGauges, name string) int { return strings.Compare(d.Name, name) })
}

// DynoGauges returns the gauges of the named dyno, nil when it has none.
// The pointer is valid until the next dyno is added to b.
func (b *Bucket) DynoGauges(name string) *Gauges {
	i, ok := b.dynoIndex(name)
	if !ok {
		return nil
	}
	return &b.Dynos[i].Gauges
}

// Merge adds everything in o to b. Merging is exact, commutative and
// associative, which is what lets late data, several dynos and coarser
// steps be folded together in any order.
func (b *Bucket) Merge(o *Bucket) {
	if o == nil {
		return
	}
	b.Requests += o.Requests
	if o.rt != nil && !o.rt.empty() {
		rt := b.router()
		rt.service.Merge(&o.rt.service)
		rt.connect.Merge(&o.rt.connect)
		rt.status.merge(&o.rt.status)
	}
	if oc := o.codes(); oc != nil && (len(oc.hCodes) > 0 || len(oc.rCodes) > 0 || len(oc.logLoss) > 0) {
		// (The odd custom metrics held beside them are merged by
		// mergeCustom, below.)
		c := b.moreCodes()
		c.hCodes.merge(oc.hCodes)
		c.rCodes.merge(oc.rCodes)
		c.logLoss.merge(oc.logLoss)
	}
	for j := range o.Dynos {
		d := &o.Dynos[j]
		i, ok := b.dynoIndex(d.Name)
		if !ok {
			b.Dynos = tightslice.Insert(b.Dynos, i, DynoGauges{Name: d.Name})
		}
		b.Dynos[i].Gauges.Merge(&d.Gauges)
	}
	b.mergeCustom(o)
}

// GaugeStat merges one gauge over the dynos in b; when dyno is non-empty
// only that dyno counts. The dynos are merged in name order, so that two
// answers of the same query agree to the last digit.
func (b *Bucket) GaugeStat(g logline.Gauge, dyno string) Stat {
	var s Stat
	if dyno != "" {
		if gs := b.DynoGauges(dyno); gs != nil {
			st := gs.Stat(g)
			s.Merge(&st)
		}
		return s
	}
	for i := range b.Dynos {
		st := b.Dynos[i].Gauges.Stat(g)
		s.Merge(&st)
	}
	return s
}

// encodingVersion 2: own sketch encoding and a CRC-32C trailer.
const encodingVersion = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode appends b's binary encoding to dst. Entries are written in key
// order (the order b keeps them in) so equal buckets encode to equal
// bytes.
func (b *Bucket) Encode(dst []byte) []byte {
	e := encoder{b: dst}
	e.uvarint(encodingVersion)
	e.uvarint(uint64(b.Requests))
	b.Service().encode(&e)
	b.Connect().encode(&e)
	b.Status().encode(&e)
	encodeCounts(&e, b.HCodes())
	encodeCounts(&e, b.RCodes())
	encodeCounts(&e, b.LogLoss())
	e.uvarint(uint64(len(b.Dynos)))
	for i := range b.Dynos {
		d := &b.Dynos[i]
		e.str(d.Name)
		for g := range logline.NumGauges {
			st := d.Gauges.Stat(g)
			st.encode(&e)
		}
	}
	b.encodeCustom(&e)
	return binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b[len(dst):], castagnoli))
}

func encodeCounts(e *encoder, c Counts[string]) {
	e.uvarint(uint64(len(c)))
	for _, kc := range c {
		e.str(kc.Key)
		e.varint(kc.N)
	}
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
	// The bucket is built on the stack and allocated at the end, together
	// with its rare part when it has one: one allocation either way.
	local := Bucket{Requests: int64(r.uvarint())}
	b := &local
	var rt routerPart
	if parts&PartService != 0 {
		if err := rt.service.decode(&r); err != nil {
			return nil, fmt.Errorf("decode bucket service: %w", err)
		}
	} else {
		skipDist(&r)
	}
	if parts&PartConnect != 0 {
		if err := rt.connect.decode(&r); err != nil {
			return nil, fmt.Errorf("decode bucket connect: %w", err)
		}
	} else {
		skipDist(&r)
	}
	if n := r.count(); n > 0 {
		if parts&PartStatus != 0 {
			if !rt.status.decode(&r, n) {
				return nil, fmt.Errorf("decode bucket: status codes out of order")
			}
		} else {
			for i := 0; i < n && r.err == nil; i++ {
				r.uvarint()
				r.uvarint()
			}
		}
	}
	var (
		rare  bucketRare
		codes bucketCodes
		err   error
	)
	if codes.hCodes, err = decodeCounts(&r, parts&PartHCodes != 0); err != nil {
		return nil, fmt.Errorf("decode bucket H codes: %w", err)
	}
	if codes.rCodes, err = decodeCounts(&r, parts&PartRCodes != 0); err != nil {
		return nil, fmt.Errorf("decode bucket R codes: %w", err)
	}
	if codes.logLoss, err = decodeCounts(&r, parts&PartLogLoss != 0); err != nil {
		return nil, fmt.Errorf("decode bucket log loss: %w", err)
	}
	if n := r.count(); n > 0 {
		keep := parts&PartDynos != 0
		if keep {
			b.Dynos = make([]DynoGauges, n)
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
			if i > 0 && name <= b.Dynos[i-1].Name && r.err == nil {
				return nil, fmt.Errorf("decode bucket: dynos out of order")
			}
			var st [logline.NumGauges]Stat
			for j := range st {
				st[j].decode(&r)
			}
			b.Dynos[i].Name = name
			b.Dynos[i].Gauges.set(&st)
		}
	}
	if n := r.count(); n > 0 {
		if parts&PartCustom == 0 {
			for i := 0; i < n && r.err == nil; i++ {
				r.bytes()
				r.uvarint()
				r.float()
				skipStat(&r)
				skipDist(&r)
			}
		} else if err := decodeCustom(&r, n, &rare.customs, &codes.odd); err != nil {
			return nil, err
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode bucket: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decode bucket: %d trailing bytes", len(r.b))
	}
	return allocDecoded(&local, &rt, &rare, &codes), nil
}

// allocDecoded returns a decoded bucket: local with rt, rare and codes
// when they are not empty, the bucket with its router part in one
// allocation and its rare part with its codes in another.
func allocDecoded(local *Bucket, rt *routerPart, rare *bucketRare, codes *bucketCodes) *Bucket {
	var rp *bucketRare
	switch {
	case len(codes.hCodes) > 0 || len(codes.rCodes) > 0 || len(codes.logLoss) > 0 || len(codes.odd) > 0:
		rc := &struct {
			bucketRare
			bucketCodes
		}{*rare, *codes}
		rc.bucketRare.codes = &rc.bucketCodes
		rp = &rc.bucketRare
	case rare.customs.len() > 0:
		rp = new(bucketRare)
		*rp = *rare
	}
	if rt.empty() {
		out := new(Bucket)
		*out, out.rare = *local, rp
		return out
	}
	br := &struct {
		Bucket
		routerPart
	}{*local, *rt}
	br.Bucket.rt, br.Bucket.rare = &br.routerPart, rp
	return &br.Bucket
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

// decodeCounts reads string counts; it steps over them unless keep.
func decodeCounts(r *decoder, keep bool) (Counts[string], error) {
	n := r.count()
	if n == 0 {
		return nil, nil
	}
	if !keep {
		for i := 0; i < n && r.err == nil; i++ {
			r.bytes()
			r.varint()
		}
		return nil, nil
	}
	c := make(Counts[string], n)
	for i := 0; i < n && r.err == nil; i++ {
		c[i] = KeyCount[string]{Key: r.str(), N: r.varint()}
		if i > 0 && c[i].Key <= c[i-1].Key && r.err == nil {
			return nil, errors.New("keys out of order")
		}
	}
	return c, nil
}
