package logline

// scanner walks the logfmt-ish `key=value` pairs of a message. Values may be
// quoted with '"' (the quotes are removed, backslash escapes are kept raw),
// empty (`dyno=`), or bare words without '=' (then hasEq is false). It never
// allocates; key and val alias the message.
type scanner struct {
	b     []byte
	i     int
	key   []byte
	val   []byte
	hasEq bool
}

func (s *scanner) next() bool {
	b := s.b
	i := s.i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i >= len(b) {
		s.i = i
		return false
	}
	st := i
	for i < len(b) && b[i] != ' ' && b[i] != '=' && b[i] != '\t' {
		i++
	}
	s.key = b[st:i:i]
	s.val = nil
	s.hasEq = false
	if i < len(b) && b[i] == '=' {
		s.hasEq = true
		i++
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				i++
			}
			s.val = b[vs:i:i]
			if i < len(b) {
				i++ // the closing quote
			}
		} else {
			vs := i
			for i < len(b) && b[i] != ' ' && b[i] != '\t' {
				i++
			}
			s.val = b[vs:i:i]
		}
	}
	s.i = i
	return true
}
