package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/kafka/kafkatest"
)

// TestHerokuKafkaTLS runs ingest and an aggregator through a broker that,
// like Heroku Kafka, speaks only TLS, requires a client certificate and
// presents a certificate that does not name the host dialled: configured
// only from the Heroku variables, drainpipe gets through; with another
// trusted CA or without the client certificate it does not.
func TestHerokuKafkaTLS(t *testing.T) {
	broker, m := kafkatest.StartTLSBroker(t)
	env := kafka.Env{
		URL: "kafka+ssl://" + broker.Addr, TrustedCert: m.TrustedCert,
		ClientCert: m.ClientCert, ClientCertKey: m.ClientCertKey, Prefix: "tenant-7.",
	}
	kc, err := env.Config()
	if err != nil {
		t.Fatal(err)
	}
	kc.Partitions = 2
	ctx := context.Background()
	if err := kafka.EnsureTopic(ctx, kc, quiet); err != nil {
		t.Fatalf("EnsureTopic over TLS: %v\n%s", err, broker.Log())
	}
	j, err := kafka.OpenJournal(kc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	appendN(t, j, "shop", 0, 20)
	sink := newMemSink()
	startAggregator(t, kc, sink)
	waitTotal(t, sink, 20)
	if _, ok := sink.offsets[offKey("tenant-7."+kafka.DefaultGroup, "tenant-7."+kafka.DefaultTopic, 0)]; !ok {
		if _, ok := sink.offsets[offKey("tenant-7."+kafka.DefaultGroup, "tenant-7."+kafka.DefaultTopic, 1)]; !ok {
			t.Errorf("no offset stored under the prefixed group and topic: %v", sink.offsets)
		}
	}

	refused := func(name string, e kafka.Env) {
		t.Helper()
		c, err := e.Config()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		j, err := kafka.OpenJournal(c, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := j.Ping(actx); err == nil {
			t.Errorf("%s: the broker answered", name)
		}
	}
	other := kafkatest.NewTLSMaterial(t)
	refused("another trusted CA", kafka.Env{URL: env.URL, TrustedCert: other.TrustedCert, ClientCert: m.ClientCert, ClientCertKey: m.ClientCertKey})
	refused("no client certificate", kafka.Env{URL: env.URL, TrustedCert: m.TrustedCert})
}
