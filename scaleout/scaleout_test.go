package scaleout

import "testing"

func TestParseRoles(t *testing.T) {
	for in, want := range map[string]string{
		"all":              "ingest,aggregate,api",
		"api,ingest":       "ingest,api",
		" aggregate ":      "aggregate",
		"ingest,ingest":    "ingest",
		"api, all":         "ingest,aggregate,api",
		"ingest,aggregate": "ingest,aggregate",
	} {
		r, err := ParseRoles(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseRoles(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "web", "api,", "ingest;api"} {
		if _, err := ParseRoles(bad); err == nil {
			t.Errorf("ParseRoles(%q) accepted", bad)
		}
	}
}
