package pgtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drainpipe/drainpipe/postgres/pgtest"
)

func ping(ctx context.Context, url string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var db string
	err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	return db, err
}

func TestDBIsFreshAndPrivate(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.DB(t), pgtest.DB(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	dbA, err := ping(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dbA, "dptest_") || !strings.Contains(a, "/"+dbA+"?") {
		t.Errorf("connected to %q through %s", dbA, a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("fresh database has %d tables", tables)
	}
}

func TestClusterStopsAndStarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := pgtest.StartCluster(t)
	if _, err := ping(ctx, c.URL); err != nil {
		t.Fatalf("fresh cluster: %v", err)
	}
	c.Stop()
	if _, err := ping(ctx, c.URL); err == nil {
		t.Fatal("stopped cluster still answers")
	}
	c.Start()
	if db, err := ping(ctx, c.URL); err != nil || db != "postgres" {
		t.Fatalf("restarted cluster: %q, %v", db, err)
	}
	// A database made on the private cluster survives the restart.
	url := pgtest.CreateDB(t, c.URL)
	c.Stop()
	c.Start()
	if _, err := ping(ctx, url); err != nil {
		t.Fatalf("database after restart: %v", err)
	}
}
