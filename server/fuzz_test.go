package server

import (
	"testing"
)

// FuzzDrain posts arbitrary bodies and headers to the drain endpoint: the
// answer is always 200 (something framed and was kept) or 400 (nothing
// could be framed), never a 5xx for bad content, and a 200 always means
// the batch reached the journal.
func FuzzDrain(f *testing.F) {
	f.Add(frame(routerLine), "3", "frame-1")
	f.Add(frame(routerLine)+"99 garbage", "-1", "")
	f.Add("", "", "")
	f.Add("83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n", "1", "x")
	f.Add("0 ", "x", "\x00")
	f.Fuzz(func(t *testing.T, body, dropCount, frameID string) {
		h := newHarness(t, Config{})
		before := len(h.journal.batches)
		w := h.drain(drainReq{body: body, frameID: frameID, headers: map[string]string{"Logplex-Drop-Count": dropCount}})
		switch w.Code {
		case 200:
			if len(h.journal.batches) != before+1 {
				t.Fatalf("200 but %d batches journaled", len(h.journal.batches)-before)
			}
		case 400:
			if len(h.journal.batches) != before {
				t.Fatal("400 but the batch was journaled")
			}
		default:
			t.Fatalf("status %d for body %q", w.Code, body)
		}
	})
}
