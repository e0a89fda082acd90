package journal

import "time"

// SegFile is segFile for the tests' fault injection.
type SegFile = segFile

// WithWrap returns opt with every segment file opened for writing
// wrapped by wrap.
func WithWrap(opt Options, wrap func(SegFile) SegFile) Options {
	opt.wrap = wrap
	return opt
}

// RecordBytes encodes one record as a segment file from before segment
// headers holds it: its checksum seed-less, the one anybody can compute.
func RecordBytes(seq int64, app, frameID string, codec uint8, stored []byte) []byte {
	return appendRecord(nil, &entry{Seq: seq, ReceivedAt: 1764064800000000000, App: app, FrameID: frameID, Codec: codec, Stored: stored}, 0)
}

// WithFree returns opt with free standing in for the free bytes of the
// journal's file system.
func WithFree(opt Options, free func() int64) Options {
	opt.free = free
	return opt
}

// WithRemove returns opt with files removed by remove.
func WithRemove(opt Options, remove func(string) error) Options {
	opt.remove = remove
	return opt
}

// SegmentHeaderSize is the size of a segment file's header.
const SegmentHeaderSize = segHeaderSize

// Queued returns how many written groups wait for the syncer (not
// counting those of the sync running).
func Queued(j *Journal) int {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	return len(j.queue)
}

// SpareReady waits until j has a spare segment ready (WriteAhead), or
// fails after a while.
func SpareReady(t interface{ Fatal(...any) }, j *Journal) {
	for range 1000 {
		j.spmu.Lock()
		ready := false
		for _, sp := range j.spare.files {
			ready = ready || sp.ready
		}
		j.spmu.Unlock()
		if ready {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no spare segment ready after 5 s")
}

// CommittedSize returns the bytes of records (and header) in j's
// segment file path: where its free space written ahead begins.
func CommittedSize(j *Journal, path string) int64 {
	j.smu.RLock()
	defer j.smu.RUnlock()
	for _, s := range j.segs {
		if s.path == path {
			return s.size
		}
	}
	return -1
}
