package journal

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/drainpipe/drainpipe/internal/batchcodec"
)

// TestCRCCombine: the combined CRC-32C of two parts is the CRC-32C of
// their concatenation, for empty parts, short ones and record-sized ones.
func TestCRCCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lens := []int{0, 1, 2, 3, 7, 8, 63, 64, 65, 255, 4096, 115_000, 1 << 20}
	for _, la := range []int{0, 1, 40, 300} {
		for _, lb := range lens {
			a, b := make([]byte, la), make([]byte, lb)
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			want := crc32.Checksum(append(a[:la:la], b...), batchcodec.Castagnoli)
			got := crcCombine(crc32.Checksum(a, batchcodec.Castagnoli), crc32.Checksum(b, batchcodec.Castagnoli), lb)
			if got != want {
				t.Fatalf("len %d + %d: combined %08x, want %08x", la, lb, got, want)
			}
		}
	}
}

func FuzzCRCCombine(f *testing.F) {
	f.Add([]byte("header"), []byte("body"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		want := crc32.Checksum(append(a[:len(a):len(a)], b...), batchcodec.Castagnoli)
		if got := crcCombine(crc32.Checksum(a, batchcodec.Castagnoli), crc32.Checksum(b, batchcodec.Castagnoli), len(b)); got != want {
			t.Fatalf("combined %08x, want %08x", got, want)
		}
	})
}

func BenchmarkCRCCombine(b *testing.B) {
	for b.Loop() {
		crcCombine(0x12345678, 0x9abcdef0, 115_000)
	}
}
