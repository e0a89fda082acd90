package metrics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/drainpipe/drainpipe/logline"
)

// refCustoms is how a bucket kept its custom metrics before they were
// kept per kind (a sorted list of Custom records with pointers), with
// that code's operations: the reference the per-kind lists must agree
// with, to the bit, through adds, merges and encodings.
type refCustoms []NamedCustom

// metric is the old Bucket.CustomMetric, without the cap.
func (r *refCustoms) metric(name string, kind logline.CustomKind) *Custom {
	i, ok := oddIndex(*r, name)
	if !ok {
		*r = slices.Insert(*r, i, NamedCustom{Name: name})
	}
	return (*r)[i].seen(kind)
}

// add is the old fold of one custom value.
func (r *refCustoms) add(name string, kind logline.CustomKind, v float64, t int64) {
	r.metric(name, kind).add(kind, v, t)
}

// merge is the old Bucket.Merge of custom metrics.
func (r *refCustoms) merge(o refCustoms) {
	for j := range o {
		i, ok := oddIndex(*r, o[j].Name)
		if !ok {
			*r = slices.Insert(*r, i, NamedCustom{Name: o[j].Name})
		}
		(*r)[i].Merge(&o[j].Custom)
	}
}

// section is the old encoding of the custom metrics.
func (r refCustoms) section() []byte {
	e := encoder{}
	e.uvarint(uint64(len(r)))
	for _, c := range r {
		e.str(c.Name)
		e.uvarint(uint64(c.Kinds))
		e.float(c.Total)
		if c.Stat != nil {
			c.Stat.encode(&e)
		} else {
			e.uvarint(0)
		}
		if c.Dist != nil {
			c.Dist.encode(&e)
		} else {
			e.uvarint(0)
		}
	}
	return e.b
}

// refDecode is the old decoding of the custom metrics' encoding.
func refDecode(section []byte) (refCustoms, error) {
	r := decoder{b: section}
	n := r.count()
	var out refCustoms
	for i := 0; i < n && r.err == nil; i++ {
		c := NamedCustom{Name: r.str()}
		if i > 0 && c.Name <= out[i-1].Name {
			return nil, fmt.Errorf("out of order")
		}
		c.Kinds, c.Total = uint8(r.uvarint()), r.float()
		var st Stat
		st.decode(&r)
		if st.Count > 0 || c.Has(logline.CustomSample) {
			c.Stat = &st
		}
		var d Dist
		if err := d.decode(&r); err != nil {
			return nil, err
		}
		if d.Count > 0 || c.Has(logline.CustomMeasure) {
			c.Dist = &d
		}
		out = append(out, c)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("corrupt")
	}
	return out, nil
}

// bucketWith returns the encoding of a bucket holding only the custom
// metrics whose encoding is section.
func bucketWith(section []byte) []byte {
	empty := new(Bucket).Encode(nil)
	body := append(empty[:len(empty)-5:len(empty)-5], section...) // less the custom count (0) and the checksum
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

// customSection returns the custom metrics' part of b's encoding.
func customSection(b *Bucket) []byte {
	var e encoder
	b.encodeCustom(&e)
	return e.b
}

// customPair is a bucket and the reference it must match.
type customPair struct {
	b   *Bucket
	ref refCustoms
}

func (p *customPair) check(t *testing.T, step string) {
	t.Helper()
	got, want := customSection(p.b), p.ref.section()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: encodes as\n% x\nwant\n% x", step, got, want)
	}
	if n := p.b.customLen(); n != len(p.ref) {
		t.Fatalf("%s: %d names, want %d", step, n, len(p.ref))
	}
	for _, rc := range p.ref {
		c, ok := p.b.Metric(rc.Name)
		if !ok || c.Kinds != rc.Kinds || math.Float64bits(c.Total) != math.Float64bits(rc.Total) ||
			(c.Stat == nil) != (rc.Stat == nil) || (c.Dist == nil) != (rc.Dist == nil) ||
			c.Stat != nil && c.Stat.Count != rc.Stat.Count || c.Dist != nil && c.Dist.Count != rc.Dist.Count {
			t.Fatalf("%s: %s reads %+v, want %+v", step, rc.Name, c, rc.Custom)
		}
	}
	if _, ok := p.b.Metric("absent"); ok {
		t.Fatalf("%s: an absent name reads", step)
	}
}

// customOps applies the operations that next draws to pool, checking
// every pair after each, while more reports true. Values come from
// values, names from a few.
func customOps(t *testing.T, pool []customPair, more func() bool, next func(n int) int) {
	names := []string{"a", "db.query", "hits", "m.1", "z"}
	values := []float64{0, 1, 2.5, -3, 1e300, -1e300, math.Copysign(0, -1), math.NaN(), math.Inf(1), 0.001, 12345.678}
	for step := 0; step < 400 && more(); step++ {
		op := next(6)
		p := &pool[next(len(pool))]
		name := names[next(len(names))]
		switch op {
		case 0, 1, 2: // a value of a kind (0 and 4: other kinds)
			kind := logline.CustomKind(next(5))
			v, at := values[next(len(values))], int64(next(1000))
			if !p.b.AddCustom(name, kind, v, at) {
				t.Fatalf("step %d: AddCustom refused below the cap", step)
			}
			p.ref.add(name, kind, v, at)
		case 3: // merge another pair in
			o := &pool[next(len(pool))]
			if o == p {
				continue
			}
			p.b.Merge(o.b)
			p.ref.merge(o.ref)
		case 4: // a round trip through the encoding
			enc := p.b.Encode(nil)
			b, err := Decode(enc)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if !bytes.Equal(b.Encode(nil), enc) {
				t.Fatalf("step %d: re-encodes differently", step)
			}
			p.b = b
		case 5: // a stored odd record, decoded from what the old code wrote
			var c Custom
			c.Kinds = []uint8{0, 1 << 1, 1 << 2, 1 << 3, 1<<1 | 1<<3, 1 << 5, 0xff}[next(7)]
			c.Total = values[next(len(values))]
			if next(2) == 0 {
				c.Stat = &Stat{}
				c.Stat.Add(values[next(len(values))], int64(next(1000)))
			}
			if next(2) == 0 {
				c.Dist = &Dist{}
				c.Dist.Add(values[next(len(values))])
			}
			sec := refCustoms{{Name: name, Custom: c}}.section()
			dec, rerr := refDecode(sec)
			b, err := Decode(bucketWith(sec))
			if (err == nil) != (rerr == nil) {
				t.Fatalf("step %d: decoding %+v: %v, the old decoding: %v", step, c, err, rerr)
			}
			if err != nil {
				continue
			}
			if next(2) == 0 { // merged, or as the bucket a store decodes and merges into
				p.b.Merge(b)
				p.ref.merge(dec)
			} else {
				p.b, p.ref = b, dec
			}
		}
		p.check(t, fmt.Sprintf("step %d op %d", step, op))
	}
}

// TestCustomMatchesOld drives the per-kind custom metrics and the old
// records (refCustoms) through random values of every kind (NaN, -0 and
// infinities too), merges, round trips and stored odd records, and
// checks encodings and reads after every step.
func TestCustomMatchesOld(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 200 {
		pool := make([]customPair, 3)
		for i := range pool {
			pool[i].b = new(Bucket)
		}
		customOps(t, pool, func() bool { return true }, func(n int) int { return rng.IntN(n) })
	}
}

// FuzzCustom is TestCustomMatchesOld with the operations drawn from the
// fuzzer's bytes.
func FuzzCustom(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 2, 3, 3, 1, 0, 5, 2, 0, 4, 1, 2, 0, 3, 1, 0})
	f.Add([]byte{5, 1, 2, 0, 3, 1, 1, 0, 2, 2, 0, 3, 0, 1, 3, 1, 0, 4, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		pool := make([]customPair, 2)
		for i := range pool {
			pool[i].b = new(Bucket)
		}
		customOps(t, pool, func() bool { return len(in) > 0 }, func(n int) int {
			if len(in) == 0 {
				return 0
			}
			v := int(in[0]) % n
			in = in[1:]
			return v
		})
	})
}

// TestCustomCap: a bucket takes MaxCustomPerBucket names and no more, a
// name it holds takes values of other kinds at the cap, and merging
// does not drop names.
func TestCustomCap(t *testing.T) {
	var b Bucket
	for i := range MaxCustomPerBucket {
		kind := logline.CustomKind(1 + i%3)
		if !b.AddCustom(fmt.Sprintf("m%03d", i), kind, 1, 1) {
			t.Fatalf("name %d refused", i)
		}
	}
	if b.AddCustom("new", logline.CustomCount, 1, 1) || b.AddCustom("new", 0, 1, 1) {
		t.Fatal("a name beyond the cap was taken")
	}
	for _, k := range []logline.CustomKind{logline.CustomCount, logline.CustomSample, logline.CustomMeasure, 0} {
		if !b.AddCustom("m007", k, 2, 2) {
			t.Fatalf("a held name refused kind %d at the cap", k)
		}
	}
	var o Bucket
	o.AddCustom("new", logline.CustomSample, 1, 1)
	b.Merge(&o)
	if n := b.customLen(); n != MaxCustomPerBucket+1 {
		t.Fatalf("%d names after merging, want %d", n, MaxCustomPerBucket+1)
	}
	if !strings.Contains(fmt.Sprint(slices.Collect(b.Custom())[0].Name), "m000") {
		t.Fatal("names out of order")
	}
}

// TestRareSize: a bucket's rare part (the per-kind lists and the string
// counts' pointer) fits the 64-byte size class.
func TestRareSize(t *testing.T) {
	if n := unsafe.Sizeof(bucketRare{}); n > 64 {
		t.Fatalf("bucketRare is %d bytes", n)
	}
}
