package drain

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"time"
)

// Defaults of Heroku's log-shuttle (github.com/heroku/log-shuttle), as set
// in its config.go (Default* constants).
const (
	LogShuttlePrival   = "190"     // DefaultPriVal: facility local7, severity info
	LogShuttleVersion  = "1"       // DefaultVersion
	LogShuttleHostname = "shuttle" // DefaultHostname
	LogShuttleAppName  = "token"   // DefaultAppName; -logplex-token / -appname replace it
	LogShuttleProcID   = "shuttle" // DefaultProcID
	// LogShuttleMsgID is the default MSGID *and* STRUCTURED-DATA fields:
	// log-shuttle's DefaultMsgID is the three characters "- -".
	LogShuttleMsgID = "- -"
	// LogShuttleTimeFormat is its LogplexBatchTimeFormat: always UTC, always
	// six fractional digits, offset written as "+00:00".
	LogShuttleTimeFormat = "2006-01-02T15:04:05.000000+00:00"
	// LogShuttleBatchSize and LogShuttleMaxLineLength are its default
	// messages per POST and bytes per frame before a raw line is split.
	LogShuttleBatchSize     = 500
	LogShuttleMaxLineLength = 10000
)

// LogShuttleFields are the syslog header fields log-shuttle puts in front
// of every raw input line (its -prival, -syslog-version, -hostname,
// -appname/-logplex-token, -procid and -msgid flags). Empty fields take
// log-shuttle's defaults.
type LogShuttleFields struct {
	Prival, Version, Hostname, AppName, ProcID, MsgID string
}

func (f LogShuttleFields) withDefaults() LogShuttleFields {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&f.Prival, LogShuttlePrival)
	def(&f.Version, LogShuttleVersion)
	def(&f.Hostname, LogShuttleHostname)
	def(&f.AppName, LogShuttleAppName)
	def(&f.ProcID, LogShuttleProcID)
	def(&f.MsgID, LogShuttleMsgID)
	return f
}

// AppendLogShuttleFrame appends one frame exactly as log-shuttle's logplex
// output formats a raw (default "-input-format=raw") input line.
//
// What log-shuttle sends, as read in its source (heroku/log-shuttle on
// GitHub; files named below):
//
// Frame layout (logplex_formatter.go NewLogplexLineFormatter, config.go
// ComputeHeader, logplex_formatter_test.go golden patterns):
//
//	<len> <PRIVAL>VERSION TIMESTAMP HOSTNAME APPNAME PROCID MSGID LINE
//
// With the defaults this is
//
//	78 <190>1 2013-09-25T01:16:49.371356+00:00 shuttle token shuttle - - Hello World\n
//
// where:
//
//   - <len> is the decimal byte count of everything after the space that
//     follows it (RFC 6587 octet counting): the header plus the line.
//   - PRIVAL 190, VERSION 1, HOSTNAME "shuttle", APPNAME "token" (the
//     -logplex-token flag sets this same field, so in practice the app-name
//     is the Logplex token), PROCID "shuttle".
//   - MSGID defaults to the literal "- -": a nil MSGID followed by a nil
//     STRUCTURED-DATA. So unlike Logplex's own drain frames (which have no
//     STRUCTURED-DATA field: "... web.3 - State changed ..."), a
//     log-shuttle message text is preceded by "- - ", and a receiver that
//     takes everything after MSGID as the message sees "- Hello World".
//   - TIMESTAMP is the time log-shuttle read the line (not a time parsed
//     from it), in UTC, formatted "2006-01-02T15:04:05.000000+00:00".
//   - LINE is the input line as read by bufio.Reader.ReadBytes('\n'), so it
//     keeps its trailing "\n" (a last line without one is sent without).
//     Raw lines longer than -max-line-length (10000) are cut into several
//     frames, each with its own header; Logplex-Msg-Count counts frames.
//   - With -input-format=rfc5424 the line is taken to be a complete syslog
//     message and only "<len> " is put in front of it.
//
// Request (logplex_formatter.go NewLogplexBatchFormatter, http_outlet.go,
// batch.go, gzip_formatter.go, cmd/log-shuttle/main.go): see
// LogShuttleHeaders for the headers. Authentication is HTTP basic auth from
// the user-info of -logs-url ($LOGS_URL, formerly $LOGPLEX_URL); when that
// URL has none, log-shuttle sets user "token" with the token as password.
// Up to 500 lines per POST (-batch-size), flushed at the latest every
// 250 ms (-wait); 5 s timeout. Only transport errors are retried (up to
// -max-attempts 3, sleeping attempts×1 s, or ×100 ms after an EOF), each
// retry with the same X-Request-Id; an HTTP error status (4xx or 5xx) is
// logged and the batch is not re-sent. With -gzip the body is gzipped and
// "Content-Encoding: gzip" is added. When lines were dropped or lost, the
// next batch starts with a loss frame (AppendLogShuttleLossFrame).
func AppendLogShuttleFrame(dst []byte, t time.Time, f LogShuttleFields, line string) []byte {
	f = f.withDefaults()
	n := 1 + len(f.Prival) + 1 + len(f.Version) + 1 + len(LogShuttleTimeFormat) + 1 +
		len(f.Hostname) + 1 + len(f.AppName) + 1 + len(f.ProcID) + 1 + len(f.MsgID) + 1 + len(line)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, " <"...)
	dst = append(dst, f.Prival...)
	dst = append(dst, '>')
	dst = append(dst, f.Version...)
	dst = append(dst, ' ')
	dst = t.UTC().AppendFormat(dst, LogShuttleTimeFormat)
	for _, s := range [...]string{f.Hostname, f.AppName, f.ProcID, f.MsgID} {
		dst = append(dst, ' ')
		dst = append(dst, s...)
	}
	dst = append(dst, ' ')
	return append(dst, line...)
}

// AppendLogShuttleLossFrame appends the frame log-shuttle puts at the top of
// a batch after it had to drop lines (its input buffer was full; code
// "L12", counted in Logplex-Drop-Count) or lost them (delivery failed; code
// "L13", Logplex-Lost-Count), as built in logplex_formatter.go
// NewLogplexErrorFormatter:
//
//	138 <172>1 NOW heroku APPNAME log-shuttle - - Error L12: 2 messages dropped since SINCE\n
//
// PRIVAL is 172 (local5.warning), HOSTNAME "heroku", PROCID "log-shuttle",
// MSGID the configured msgid ("- -" by default, empty appName means
// "token"), times in LogShuttleTimeFormat. Note the colon right after the
// code, where Logplex's own L10 lines read "Error L10 (output buffer
// overflow): N messages dropped since ...".
func AppendLogShuttleLossFrame(dst []byte, now time.Time, appName, code string, count int, since time.Time) []byte {
	if appName == "" {
		appName = LogShuttleAppName
	}
	what := "dropped"
	if code == "L13" {
		what = "lost"
	}
	msg := fmt.Sprintf("<172>%s %s heroku %s log-shuttle %s Error %s: %d messages %s since %s\n",
		LogShuttleVersion, now.UTC().Format(LogShuttleTimeFormat), appName, LogShuttleMsgID,
		code, count, what, since.UTC().Format(LogShuttleTimeFormat))
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// LogShuttleUserAgent returns log-shuttle's User-Agent for a version:
// "log-shuttle/VERSION (GOVERSION; GOOS; GOARCH; COMPILER)" (http_outlet.go;
// VERSION is set at link time and may be empty).
func LogShuttleUserAgent(version string) string {
	return fmt.Sprintf("log-shuttle/%s (%s; %s; %s; %s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.Compiler)
}

// LogShuttleHeaders returns the request headers log-shuttle sends with a
// batch of msgCount frames (logplex_formatter.go, http_outlet.go):
//
//   - Content-Type: application/logplex-1
//   - X-Request-Id: the batch's random UUID (pborman/uuid.New in batch.go),
//     the same on every retry of the batch
//   - Logplex-Msg-Count: frames in the body, loss frames and the pieces of
//     split lines included
//   - Logplex-Drop-Count / Logplex-Lost-Count: only when drops / lost > 0
//   - User-Agent: LogShuttleUserAgent(version)
//
// It sends no Logplex-Frame-Id and no Logplex-Drain-Token: a receiver that
// deduplicates retries by Frame-Id sees none from log-shuttle (X-Request-Id
// plays that role). Authorization (basic auth) is not included here; it
// comes from the URL.
func LogShuttleHeaders(msgCount int, requestID string, drops, lost int, version string) http.Header {
	h := make(http.Header, 6)
	h.Set("Content-Type", ContentType)
	h.Set("X-Request-Id", requestID)
	if drops > 0 {
		h.Set("Logplex-Drop-Count", strconv.Itoa(drops))
	}
	if lost > 0 {
		h.Set("Logplex-Lost-Count", strconv.Itoa(lost))
	}
	h.Set("Logplex-Msg-Count", strconv.Itoa(msgCount))
	h.Set("User-Agent", LogShuttleUserAgent(version))
	return h
}
