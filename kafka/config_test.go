package kafka_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/kafka"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in      string
		brokers []string
		tls     bool
		err     string
	}{
		{in: "kafka+ssl://b1.example.com:9096,kafka+ssl://b2.example.com:9096", brokers: []string{"b1.example.com:9096", "b2.example.com:9096"}, tls: true},
		{in: "kafka://127.0.0.1:9092", brokers: []string{"127.0.0.1:9092"}},
		{in: "127.0.0.1:9092, 127.0.0.1:9093", brokers: []string{"127.0.0.1:9092", "127.0.0.1:9093"}},
		{in: "", err: "empty"},
		{in: "http://x:1", err: "scheme"},
		{in: "kafka://x:1,kafka+ssl://y:2", err: "mixes"},
		{in: "kafka://x", err: "host:port"},
	} {
		brokers, tls, err := kafka.ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%q) error = %v, want one saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(brokers, c.brokers) || tls != c.tls {
			t.Errorf("ParseURL(%q) = %v, %v, %v; want %v, %v", c.in, brokers, tls, err, c.brokers, c.tls)
		}
	}
}

func TestEnvConfig(t *testing.T) {
	env := map[string]string{"KAFKA_URL": "kafka://127.0.0.1:9092", "KAFKA_PREFIX": "tenant-1."}
	c, err := kafka.EnvFrom(func(k string) string { return env[k] }).Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.TopicName() != "tenant-1."+kafka.DefaultTopic || c.GroupName() != "tenant-1."+kafka.DefaultGroup {
		t.Errorf("prefixed names: %s, %s", c.TopicName(), c.GroupName())
	}
	if c.TLS != nil {
		t.Error("kafka:// got TLS")
	}
	env = map[string]string{"KAFKA_URL": "kafka+ssl://h:9096", "KAFKA_CLIENT_CERT": "x"}
	if _, err := kafka.EnvFrom(func(k string) string { return env[k] }).Config(); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
	env = map[string]string{"KAFKA_URL": "kafka+ssl://h:9096", "KAFKA_TRUSTED_CERT": "not pem"}
	if _, err := kafka.EnvFrom(func(k string) string { return env[k] }).Config(); err == nil {
		t.Error("a trusted certificate that is no PEM was accepted")
	}
	env = map[string]string{"KAFKA_URL": "kafka+ssl://h:9096"}
	c, err = kafka.EnvFrom(func(k string) string { return env[k] }).Config()
	if err != nil || c.TLS == nil {
		t.Errorf("kafka+ssl:// without certificates: %v, TLS %v", err, c.TLS)
	}
}

func TestAppendGivesUpAtItsDeadlineWhenKafkaIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	j, err := kafka.OpenJournal(kafka.Config{Brokers: []string{addr}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = j.Append(ctx, drainpipe.Batch{App: "shop", Body: []byte("x")})
	if err == nil {
		t.Fatal("Append to an unreachable broker succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Append took %s after a 500ms deadline; ingest must answer 503 promptly", d)
	}
}
