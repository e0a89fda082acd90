package journal

// SegFile is segFile for the tests' fault injection.
type SegFile = segFile

// WithWrap returns opt with every segment file opened for writing
// wrapped by wrap.
func WithWrap(opt Options, wrap func(SegFile) SegFile) Options {
	opt.wrap = wrap
	return opt
}
