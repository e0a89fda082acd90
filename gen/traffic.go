package gen

import (
	"math"
	"sort"
	"strconv"
)

// Path id kinds.
const (
	idNone  = iota
	idNum   // /products/123
	idUUID  // /v1/sessions/6f1c...
	idAsset // /assets/application-1a2b3c4d.css
	idQuery // /search?q=shoes
)

type route struct {
	method       string
	path         string // prefix, before the id
	id           uint8
	suffix       string
	weight       uint32
	ok           int     // status of a successful request
	bytes        float64 // median body size of a success
	ctrl, action string  // for the app's request log line
	format       string
}

var flavorRoutes = [...][]route{
	FlavorShop: {
		{"GET", "/", idNone, "", 14, 200, 24000, "HomeController", "index", "html"},
		{"GET", "/products/", idNum, "", 30, 200, 18000, "ProductsController", "show", "html"},
		{"GET", "/products", idNone, "", 8, 200, 32000, "ProductsController", "index", "html"},
		{"GET", "/search?q=", idQuery, "", 6, 200, 21000, "SearchController", "show", "html"},
		{"GET", "/cart", idNone, "", 6, 200, 9000, "CartsController", "show", "html"},
		{"POST", "/cart/items", idNone, "", 5, 201, 900, "CartItemsController", "create", "json"},
		{"POST", "/checkout", idNone, "", 2, 302, 120, "CheckoutsController", "create", "html"},
		{"GET", "/assets/application-", idAsset, ".css", 14, 200, 48000, "", "", ""},
		{"GET", "/login", idNone, "", 3, 200, 7000, "SessionsController", "new", "html"},
	},
	FlavorAPI: {
		{"GET", "/v1/orders/", idNum, "", 30, 200, 2400, "Api::V1::OrdersController", "show", "json"},
		{"GET", "/v1/orders", idNone, "", 15, 200, 16000, "Api::V1::OrdersController", "index", "json"},
		{"POST", "/v1/orders", idNone, "", 8, 201, 2100, "Api::V1::OrdersController", "create", "json"},
		{"GET", "/v1/users/", idNum, "", 15, 200, 1300, "Api::V1::UsersController", "show", "json"},
		{"PATCH", "/v1/users/", idNum, "", 4, 200, 1300, "Api::V1::UsersController", "update", "json"},
		{"DELETE", "/v1/sessions/", idUUID, "", 4, 204, 0, "Api::V1::SessionsController", "destroy", "json"},
		{"GET", "/health", idNone, "", 10, 200, 15, "HealthController", "show", "json"},
	},
	FlavorBilling: {
		{"POST", "/webhooks/stripe", idNone, "", 25, 200, 2, "WebhooksController", "stripe", "json"},
		{"GET", "/invoices/", idNum, "", 20, 200, 14000, "InvoicesController", "show", "html"},
		{"GET", "/invoices/", idNum, ".pdf", 8, 200, 60000, "InvoicesController", "show", "pdf"},
		{"GET", "/admin/dashboard", idNone, "", 10, 200, 36000, "Admin::DashboardController", "show", "html"},
		{"POST", "/invoices/", idNum, "/refund", 2, 201, 400, "RefundsController", "create", "json"},
		{"GET", "/health", idNone, "", 15, 200, 15, "HealthController", "show", "json"},
	},
}

var searchWords = []string{"shoes", "jacket", "red+dress", "socks", "gift+card", "sale", "backpack", "boots", "scarf", "hat"}

var jobNames = [...][]string{
	FlavorShop:    {"SendOrderConfirmationJob", "SyncInventoryJob", "ResizeProductImageJob", "AbandonedCartReminderJob"},
	FlavorAPI:     {"WebhookDeliveryJob", "CacheWarmJob", "ExportOrdersJob"},
	FlavorBilling: {"charge_invoice", "reconcile_payments", "send_dunning_email", "generate_invoice_pdf"},
}

// statusFor picks the status of a request to rt and the factor applied to
// its service time. The shares per 10,000 requests: GET: 20 → 500, 300 →
// 404, 100 → 301, 500 → 304 (6,000 → 304 for assets), the rest succeed;
// writes: 30 → 500, 400 → 422, 50 → 404; DELETE: 20 → 500, 300 → 404.
func statusFor(u uint32, rt *route) (status int, mult float64) {
	switch rt.method {
	case "GET":
		switch {
		case u < 20:
			return 500, 2.5
		case u < 320:
			return 404, 0.4
		case u < 420:
			return 301, 0.2
		case rt.id == idAsset && u < 6420, u < 920:
			return 304, 0.35
		}
	case "DELETE":
		switch {
		case u < 20:
			return 500, 2.5
		case u < 320:
			return 404, 0.4
		}
	default:
		switch {
		case u < 30:
			return 500, 2.5
		case u < 430:
			return 422, 0.6
		case u < 480:
			return 404, 0.4
		}
	}
	return rt.ok, 1
}

// appendPath appends the request path of rt.
func (g *Generator) appendPath(b []byte, rt *route) []byte {
	r := g.r
	b = append(b, rt.path...)
	switch rt.id {
	case idNum:
		// Log-uniform ids: a few popular records, a long tail.
		b = strconv.AppendInt(b, int64(math.Exp(r.Float64()*11.5)), 10)
	case idUUID:
		b = appendUUID(b, r.Uint64(), r.Uint64())
	case idAsset:
		b = append(b, g.assetTag...)
	case idQuery:
		b = append(b, searchWords[r.IntN(len(searchWords))]...)
	}
	return append(b, rt.suffix...)
}

// request emits one router line (and sometimes app lines) at ns.
func (g *Generator) request(ns int64) {
	r := g.r
	u := r.Uint32N(g.routeCum[len(g.routeCum)-1])
	rt := &g.routes[sort.Search(len(g.routeCum), func(i int) bool { return g.routeCum[i] > u })]
	reqHi, reqLo := r.Uint64(), r.Uint64()
	ip := r.Uint32()
	proto := "https"
	if r.Uint32N(100) < 3 {
		proto = "http"
	}

	b := g.buf[:0]
	if g.crashed[g.web] {
		// H10: no dyno served it, so dyno/connect/service/bytes are empty.
		b = append(b, `at=error code=H10 desc="App crashed" method=`...)
		b = append(b, rt.method...)
		b = append(b, ` path="`...)
		b = g.appendPath(b, rt)
		b = append(b, `" host=`...)
		b = g.tail(b, reqHi, reqLo, ip)
		b = append(b, " dyno= connect= service= status=503 bytes= protocol="...)
		g.buf = append(b, proto...)
		g.out(ns, "heroku", "router", g.buf)
		return
	}
	ts := &g.types[g.web]
	slot := 1 + r.IntN(max(g.cnt[g.web], 1))
	dyno := ts.procIDs[min(slot, len(ts.procIDs))-1]
	status, mult := statusFor(r.Uint32N(10000), rt)
	svc := lognormal(r, g.mu, g.app.Sigma) * mult
	timeout := g.timeouts && r.Float64() < TimeoutShare
	interrupted := !timeout && r.Uint32N(10000) < 3
	if g.timeouts {
		svc *= 2.5
	}
	connect := int64(0)
	if c := r.Uint32N(100); c >= 45 {
		connect = 1
		if c >= 93 {
			connect = 2 + int64(c%4)
		}
	}
	var size int64
	switch status {
	case 200:
		size = int64(rt.bytes * math.Exp(0.5*r.NormFloat64()))
	case 201, 302:
		size = int64(rt.bytes)
	case 301:
		size = 178
	case 404:
		size = 1564
	case 422:
		size = 120
	case 500:
		size = 1477
	}

	switch {
	case timeout:
		b = append(b, `at=error code=H12 desc="Request timeout" method=`...)
		status, svc, connect, size = 503, 30000, 0, 0
	case interrupted:
		b = append(b, `at=error code=H27 desc="Client Request Interrupted" method=`...)
		status = 499
	default:
		b = append(b, "at=info method="...)
	}
	svcMS := int64(svc + 0.5)
	if !timeout && svcMS >= 30000 {
		svcMS = 29999
	}
	b = append(b, rt.method...)
	b = append(b, " path="...)
	pathStart := len(b)
	b = g.appendPath(b, rt)
	pathEnd := len(b)
	b = append(b, " host="...)
	b = g.tail(b, reqHi, reqLo, ip)
	b = append(b, " dyno="...)
	b = append(b, dyno...)
	b = append(b, " connect="...)
	b = strconv.AppendInt(b, connect, 10)
	b = append(b, "ms service="...)
	b = strconv.AppendInt(b, svcMS, 10)
	b = append(b, "ms status="...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " bytes="...)
	if !interrupted {
		b = strconv.AppendInt(b, size, 10)
	}
	b = append(b, " protocol="...)
	g.buf = append(b, proto...)
	g.out(ns, "heroku", "router", g.buf)

	if timeout || interrupted || rt.ctrl == "" {
		return
	}
	// The app's own request log (lograge style: key=value, but not a
	// metric), for 15% of requests and for every 500.
	a := r.Uint32N(1000)
	if a < 150 || status == 500 {
		var path [256]byte
		p := append(path[:0], g.buf[pathStart:pathEnd]...)
		b = append(g.buf[:0], "method="...)
		b = append(b, rt.method...)
		b = append(b, " path="...)
		b = append(b, p...)
		b = append(b, " format="...)
		b = append(b, rt.format...)
		b = append(b, " controller="...)
		b = append(b, rt.ctrl...)
		b = append(b, " action="...)
		b = append(b, rt.action...)
		b = append(b, " status="...)
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, " duration="...)
		b = appendFixed2(b, svc*0.97)
		b = append(b, " view="...)
		b = appendFixed2(b, svc*0.3)
		b = append(b, " db="...)
		g.buf = appendFixed2(b, svc*0.25)
		g.out(ns-msec, "app", dyno, g.buf)
	}
	if status == 500 {
		g.buf = append(g.buf[:0], "ERROR -- : ActiveRecord::StatementInvalid (PG::QueryCanceled: ERROR:  canceling statement due to statement timeout)"...)
		g.out(ns-msec+1, "app", dyno, g.buf)
	}
	// l2met custom metrics.
	switch {
	case a >= 150 && a < 190:
		b = append(g.buf[:0], "measure#db.query="...)
		b = strconv.AppendInt(b, int64(svc*0.25+0.5), 10)
		b = append(b, "ms measure#db.rows="...)
		b = strconv.AppendInt(b, int64(1+r.IntN(40)), 10)
		b = append(b, " count#cache.hits="...)
		g.buf = strconv.AppendInt(b, int64(r.IntN(4)), 10)
		g.out(ns-2*msec, "app", dyno, g.buf)
	case a >= 190 && a < 193 && status < 400:
		g.buf = append(g.buf[:0], "count#signups=1"...)
		g.out(ns-2*msec, "app", dyno, g.buf)
	}
}

// tail appends "HOST request_id=UUID fwd="IP"" after "host=".
func (g *Generator) tail(b []byte, reqHi, reqLo uint64, ip uint32) []byte {
	b = append(b, g.host...)
	b = append(b, " request_id="...)
	b = appendUUID(b, reqHi, reqLo)
	b = append(b, ` fwd="`...)
	b = appendIPv4(b, ip)
	return append(b, '"')
}

// job emits the output of one background job at ns.
func (g *Generator) job(ns int64) {
	r := g.r
	ts := &g.types[g.jobT]
	slot := 1 + r.IntN(g.cnt[g.jobT])
	p := ts.procIDs[min(slot, len(ts.procIDs))-1]
	names := jobNames[g.app.Flavor%Flavor(len(jobNames))]
	name := names[r.IntN(len(names))]
	ms := lognormal(r, 5.2, 0.8) // median ≈ 180 ms
	failed := r.Uint32N(100) == 0
	hi, lo := r.Uint64(), r.Uint64()
	b := g.buf[:0]
	if g.app.Flavor == FlavorBilling {
		b = append(b, "Task billing.tasks."...)
		b = append(b, name...)
		b = append(b, '[')
		b = appendUUID(b, hi, lo)
		if failed {
			b = append(b, "] raised unexpected: CardError('Your card was declined.')"...)
		} else {
			b = append(b, "] succeeded in "...)
			b = strconv.AppendFloat(b, ms/1000, 'f', 3, 64)
			b = append(b, "s: None"...)
		}
	} else {
		if failed {
			b = append(b, "Error performing "...)
		} else {
			b = append(b, "Performed "...)
		}
		b = append(b, name...)
		b = append(b, " (Job ID: "...)
		b = appendUUID(b, hi, lo)
		b = append(b, ") from Sidekiq(default) in "...)
		b = appendFixed2(b, ms)
		b = append(b, "ms"...)
		if failed {
			b = append(b, ": Net::ReadTimeout (Net::ReadTimeout)"...)
		}
	}
	g.buf = b
	g.out(ns, "app", p, b)
	if r.Uint32N(10) < 3 {
		if failed {
			b = append(g.buf[:0], "count#jobs.failed=1"...)
		} else {
			b = append(g.buf[:0], "count#jobs.processed=1 measure#job.duration="...)
			b = strconv.AppendInt(b, int64(ms+0.5), 10)
			b = append(b, "ms"...)
		}
		g.buf = b
		g.out(ns+msec, "app", p, b)
	}
}
