package journal

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
