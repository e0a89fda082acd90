// Package logplex reads and writes the Logplex HTTPS drain format
// (application/logplex-1): RFC 6587 octet-counted frames, each holding an
// RFC 5424 syslog message without STRUCTURED-DATA. It also reads the lines
// that `heroku logs --tail` prints.
//
// The readers are on the hot path: they never use regular expressions and
// do not allocate per frame; returned slices alias the input.
package logplex

// Header is the parsed syslog header of one message. Byte slices alias the
// input and are valid only until the input is reused.
type Header struct {
	// Time is the event time as Unix nanoseconds (UTC).
	Time     int64
	Hostname []byte
	AppName  []byte // "heroku" for platform lines, "app" for app output
	ProcID   []byte // "router", "web.1", "api", "logplex", ...
	MsgID    []byte
	// Msg is the message text with any trailing newline removed.
	Msg []byte
}
