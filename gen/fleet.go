package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Flavor selects the kind of app a generator imitates: its URL paths,
// request methods and process commands.
type Flavor uint8

// App flavors.
const (
	FlavorShop    Flavor = iota // a web shop: products, cart, checkout, assets
	FlavorAPI                   // a JSON API: /v1/orders, /v1/users, health checks
	FlavorBilling               // a back office: webhooks, invoices, admin pages
)

// String names the flavor.
func (f Flavor) String() string {
	switch f {
	case FlavorShop:
		return "shop"
	case FlavorAPI:
		return "api"
	case FlavorBilling:
		return "billing"
	}
	return "flavor(" + strconv.Itoa(int(f)) + ")"
}

// TypeSpec is one process type of an app's formation.
type TypeSpec struct {
	// Name is the process type: "web" receives router traffic, anything
	// else (usually "worker") only writes app output.
	Name string
	// Dynos is how many dynos run, 2–6 (the scaling episode moves it by
	// one, staying within that range).
	Dynos int
	// Size is the dyno size shown in scaling lines, e.g. "Standard-1X".
	Size string
	// QuotaMB is the memory quota (sample#memory_quota), e.g. 512 or 1024.
	QuotaMB float64
	// Command is what "Starting process with command `…`" shows.
	Command string
	// MemBase is memory right after boot and MemGrowth the increase per
	// 24 h of uptime, both as fractions of QuotaMB (memory never exceeds
	// 97% of the quota outside an R14 episode).
	MemBase, MemGrowth float64
}

// AppSpec describes one synthetic Heroku app.
type AppSpec struct {
	// Name is the Heroku app name; the router host is Name.herokuapp.com.
	Name   string
	Flavor Flavor
	// Types is the formation. The type named "web", if any, gets router
	// lines; other types get job output.
	Types []TypeSpec
	// RPS is the mean router requests per second over a day. Traffic
	// follows a daily curve: RPS × (1 + 0.4·sin(2π(h−9)/24)) at UTC hour
	// h, peaking at 15:00 UTC and lowest at 03:00 UTC.
	RPS float64
	// MedianMS and Sigma define the log-normal router service time of
	// successful (200) requests: median MedianMS milliseconds, sigma Sigma
	// of the underlying normal.
	MedianMS, Sigma float64
	// JobsPerSec is the mean number of jobs per second over all dynos of
	// the non-web types, each writing a line of app output.
	JobsPerSec float64
	// EpisodeShift moves all of the app's scenario episodes earlier by this
	// much (for a 24 h window; scaled with the window like the offsets), so
	// that the apps of a fleet do not all deploy at the same moment.
	EpisodeShift time.Duration
	// User is the account named in platform API lines
	// ("Deploy … by user dev@example.com").
	User string
}

// Type returns the spec of process type name and whether the app has it.
func (a *AppSpec) Type(name string) (TypeSpec, bool) {
	for _, t := range a.Types {
		if t.Name == name {
			return t, true
		}
	}
	return TypeSpec{}, false
}

// Quotas of the dyno sizes the generator uses.
var sizeQuotaMB = map[string]float64{
	"Standard-1X":   512,
	"Standard-2X":   1024,
	"Performance-M": 2560,
}

// DemoFleet returns n apps (at least 3; n < 3 is taken as 3). The first
// three are always the demo apps:
//
//   - storefront: a shop; web 3 × Standard-2X (1024 MB), worker 2 ×
//     Standard-1X; 12 req/s, median 85 ms; 2 jobs/s.
//   - api-gateway: an API; web 4 × Standard-1X (512 MB), worker 2 ×
//     Standard-1X; 16 req/s, median 35 ms; 0.5 jobs/s.
//   - billing-worker: a back office; web 2 × Standard-1X, worker 5 ×
//     Standard-2X; 3 req/s, median 140 ms; 4 jobs/s; its episodes are
//     shifted by 20h30m, which puts its R14 memory episode 30 minutes
//     before the end of the window.
//
// Together they make about 31 requests/s, some 3.5 million lines per 24 h
// (use ScaleRPS to change that). Their episodes are shifted by 0, 7 and 14
// minutes. Apps beyond the third get names such as "quiet-otter-4821",
// a random flavor, web and (mostly) worker types with 2–6 dynos,
// 0.5–20 req/s (log-uniform), a 20–250 ms median and shifts of
// 7·i mod 60 minutes. The result depends only on n and seed.
func DemoFleet(n int, seed uint64) []AppSpec {
	n = max(n, 3)
	fleet := make([]AppSpec, 0, n)
	fleet = append(fleet,
		AppSpec{
			Name: "storefront", Flavor: FlavorShop, RPS: 12, MedianMS: 85, Sigma: 0.6, JobsPerSec: 2,
			User: "dev@example.com",
			Types: []TypeSpec{
				{Name: "web", Dynos: 3, Size: "Standard-2X", QuotaMB: 1024, Command: "bundle exec puma -C config/puma.rb", MemBase: 0.42, MemGrowth: 0.2},
				{Name: "worker", Dynos: 2, Size: "Standard-1X", QuotaMB: 512, Command: "bundle exec sidekiq -C config/sidekiq.yml", MemBase: 0.5, MemGrowth: 0.25},
			},
		},
		AppSpec{
			Name: "api-gateway", Flavor: FlavorAPI, RPS: 16, MedianMS: 35, Sigma: 0.45, JobsPerSec: 0.5,
			User: "ops@example.com", EpisodeShift: 7 * time.Minute,
			Types: []TypeSpec{
				{Name: "web", Dynos: 4, Size: "Standard-1X", QuotaMB: 512, Command: "bin/api-server --port $PORT", MemBase: 0.3, MemGrowth: 0.12},
				{Name: "worker", Dynos: 2, Size: "Standard-1X", QuotaMB: 512, Command: "bin/api-worker", MemBase: 0.25, MemGrowth: 0.1},
			},
		},
		AppSpec{
			Name: "billing-worker", Flavor: FlavorBilling, RPS: 3, MedianMS: 140, Sigma: 0.7, JobsPerSec: 4,
			// Shifted so that its R14 memory episode (−4h in the schedule)
			// is under way in the last hour of the backfill: the demo's
			// fleet page opens with one app in trouble.
			User: "dev@example.com", EpisodeShift: 20*time.Hour + 30*time.Minute,
			Types: []TypeSpec{
				{Name: "web", Dynos: 2, Size: "Standard-1X", QuotaMB: 512, Command: "bundle exec puma -C config/puma.rb", MemBase: 0.45, MemGrowth: 0.2},
				{Name: "worker", Dynos: 5, Size: "Standard-2X", QuotaMB: 1024, Command: "bundle exec sidekiq -q billing -q default", MemBase: 0.55, MemGrowth: 0.3},
			},
		},
	)
	r := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc909))
	seen := map[string]bool{"storefront": true, "api-gateway": true, "billing-worker": true}
	users := []string{"dev@example.com", "ops@example.com", "alice@example.com", "deploy-bot@example.com"}
	sizes := []string{"Standard-1X", "Standard-2X"}
	for i := 3; i < n; i++ {
		var name string
		for {
			name = adjectives[r.IntN(len(adjectives))] + "-" + nouns[r.IntN(len(nouns))] + "-" + strconv.Itoa(1000+r.IntN(9000))
			if !seen[name] {
				seen[name] = true
				break
			}
		}
		fl := Flavor(r.IntN(3))
		a := AppSpec{
			Name:         name,
			Flavor:       fl,
			RPS:          round2(math.Exp(math.Log(0.5) + r.Float64()*math.Log(40))),
			MedianMS:     math.Round(math.Exp(math.Log(20) + r.Float64()*math.Log(12.5))),
			Sigma:        round2(0.3 + 0.5*r.Float64()),
			JobsPerSec:   round2(0.2 + 3*r.Float64()),
			User:         users[r.IntN(len(users))],
			EpisodeShift: time.Duration(7*i%60) * time.Minute,
		}
		size := sizes[r.IntN(2)]
		a.Types = append(a.Types, TypeSpec{Name: "web", Dynos: 2 + r.IntN(5), Size: size, QuotaMB: sizeQuotaMB[size],
			Command: webCommand[fl], MemBase: round2(0.25 + 0.3*r.Float64()), MemGrowth: round2(0.1 + 0.2*r.Float64())})
		if r.IntN(5) != 0 {
			size := sizes[r.IntN(2)]
			a.Types = append(a.Types, TypeSpec{Name: "worker", Dynos: 2 + r.IntN(5), Size: size, QuotaMB: sizeQuotaMB[size],
				Command: workerCommand[fl], MemBase: round2(0.25 + 0.3*r.Float64()), MemGrowth: round2(0.1 + 0.2*r.Float64())})
		} else {
			a.JobsPerSec = 0
		}
		fleet = append(fleet, a)
	}
	return fleet
}

// ScaleRPS returns a copy of fleet with every app's RPS and JobsPerSec
// multiplied by k: the knob for more or less traffic.
func ScaleRPS(fleet []AppSpec, k float64) []AppSpec {
	out := make([]AppSpec, len(fleet))
	for i, a := range fleet {
		a.RPS *= k
		a.JobsPerSec *= k
		out[i] = a
	}
	return out
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

var webCommand = [...]string{
	FlavorShop:    "bundle exec puma -C config/puma.rb",
	FlavorAPI:     "bin/api-server --port $PORT",
	FlavorBilling: "gunicorn billing.wsgi --log-file -",
}

var workerCommand = [...]string{
	FlavorShop:    "bundle exec sidekiq -C config/sidekiq.yml",
	FlavorAPI:     "bin/api-worker",
	FlavorBilling: "celery -A billing worker -l info",
}

var adjectives = []string{
	"quiet", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively",
	"merry", "nice", "proud", "silly", "witty", "zesty", "ancient", "billowing", "crimson", "dry",
	"frosty", "glacial", "hidden", "icy", "lingering", "misty", "nameless", "polished", "rough", "shy",
	"sparkling", "still", "twilight", "wandering", "young", "aqueous", "boiling", "cryptic", "damp", "evening",
}

var nouns = []string{
	"otter", "falcon", "river", "meadow", "harbor", "canyon", "forest", "glade", "island", "lake",
	"mountain", "ocean", "prairie", "reef", "sky", "stream", "sunrise", "tundra", "valley", "wave",
	"badger", "beacon", "brook", "cloud", "dawn", "dune", "ember", "fjord", "grove", "hollow",
	"lagoon", "mesa", "nebula", "peak", "pine", "ridge", "shore", "spire", "thicket", "willow",
}
