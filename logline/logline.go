// Package logline classifies and parses the message text of Heroku log
// lines: router requests, runtime metrics, dyno errors and lifecycle,
// platform API events, log loss and l2met-style custom metrics.
//
// Parse is on the hot path: no regular expressions and no allocations per
// line. Every byte slice in a Line aliases the input message.
package logline

// Kind says what a line is.
type Kind uint8

// Line kinds.
const (
	KindUnknown Kind = iota // ordinary app output, nothing to count
	KindRouter              // heroku[router] request line
	KindRuntime             // heroku[web.1] runtime metrics sample
	KindDyno                // heroku[web.1] R-code error or lifecycle line
	KindAPI                 // app[api] release, deploy, scale, config
	KindLogLoss             // heroku[logplex] L10..L15
	KindCustom              // app[...] count#/measure#/sample# metrics
)

// Gauge indexes the runtime-metrics samples a dyno reports.
type Gauge uint8

// Runtime gauges, in the order used by Runtime.Values.
const (
	GaugeLoad1m Gauge = iota
	GaugeLoad5m
	GaugeLoad15m
	GaugeMemTotal // bytes
	GaugeMemRSS   // bytes
	GaugeMemCache // bytes
	GaugeMemSwap  // bytes
	GaugeMemQuota // bytes
	NumGauges
)

// DynoEvent is the lifecycle happening a dyno line reports.
type DynoEvent uint8

// Dyno events.
const (
	DynoNone     DynoEvent = iota
	DynoError              // "Error R14 (Memory quota exceeded)" and other R codes
	DynoCrash              // "State changed from up to crashed"
	DynoState              // any other "State changed from X to Y"
	DynoRestart            // "Restarting"
	DynoCycling            // "Cycling"
	DynoStopping           // "Stopping all processes with SIGTERM"
	DynoExit               // "Process exited with status N"
	DynoStart              // "Starting process with command ..."
	DynoMemory             // "Process running mem=1028M(103.3%)"
)

// APIEvent is the kind of a platform API line.
type APIEvent uint8

// API events.
const (
	APINone    APIEvent = iota
	APIRelease          // "Release v99 created by user ..."
	APIDeploy           // "Deploy e6442b7c by user ..."
	APIScale            // "Scaled to web@2:Standard-1X ... by user ..."
	APIConfig           // "Set FOO config vars by user ...", "Remove FOO config vars ..."
)

// CustomKind is the l2met metric kind.
type CustomKind uint8

// Custom metric kinds.
const (
	CustomCount   CustomKind = iota + 1 // count#name=N: summed
	CustomSample                        // sample#name=V: a gauge
	CustomMeasure                       // measure#name=V: a distribution
)

// MaxCustom is how many custom metrics one line may carry; more are ignored
// and counted in Line.CustomDropped.
const MaxCustom = 16

// Custom is one l2met-style metric on an app line.
type Custom struct {
	Kind  CustomKind
	Name  []byte
	Value float64 // units such as "ms" are stripped; the number is kept as written
	Unit  []byte  // "ms", "MB", ... or empty
}

// Router holds the fields of a router request line that drainpipe counts.
type Router struct {
	At          []byte // "info", "warning" or "error"
	Code        []byte // "H12", or empty
	Dyno        []byte // "web.1", or empty when no dyno served it
	ProcessType []byte // part of Dyno before the dot; "web" when Dyno is empty
	Method      []byte
	Path        []byte
	Host        []byte
	HasConnect  bool
	ConnectMS   float64
	HasService  bool
	ServiceMS   float64
	Status      int // 0 when absent
	Bytes       int64
}

// Runtime holds one runtime-metrics sample line.
type Runtime struct {
	Source      []byte // "web.1": stable across restarts
	ProcessType []byte // "web"
	Dyno        []byte // "heroku.2808254.d97d..." changes on every restart
	Has         uint16 // bit i set when Values[i] was present
	Values      [NumGauges]float64
}

// Dyno holds a dyno error or lifecycle line.
type Dyno struct {
	Source      []byte // "web.1" (from the syslog PROCID)
	ProcessType []byte // "web"
	Event       DynoEvent
	Code        []byte // "R14" for DynoError
	Detail      []byte // the whole message
	ExitStatus  int    // for DynoExit
}

// API holds a platform API event line.
type API struct {
	Event  APIEvent
	Detail []byte // the whole message
}

// LogLoss holds a logplex L-code line.
type LogLoss struct {
	Code    []byte // "L10"
	Dropped int64  // messages dropped (1 when the line gives no count)
}

// Line is the result of parsing one message. Only the part that matches
// Kind is filled in.
type Line struct {
	Kind    Kind
	Router  Router
	Runtime Runtime
	Dyno    Dyno
	API     API
	LogLoss LogLoss
	// Custom metrics on an app line; NumCustom of them are valid.
	Custom        [MaxCustom]Custom
	NumCustom     int
	CustomSource  []byte // optional source= on a custom-metrics line
	CustomDropped int    // metrics beyond MaxCustom on this line

	filled parts // the parts the last Parse may have written, for reset
}

// parts is a set of a Line's parts.
type parts uint8

const (
	partRouter parts = 1 << iota
	partRuntime
	partDyno
	partAPI
	partLogLoss
	partCustom // Custom, NumCustom, CustomSource, CustomDropped
)
