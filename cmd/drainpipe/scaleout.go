package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/drainpipe/drainpipe/internal/tlsconf"
	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/postgres"
	"github.com/drainpipe/drainpipe/scaleout"
	"github.com/drainpipe/drainpipe/web"
)

// scaleFlags are serve's flags for the scale-out mode.
type scaleFlags struct {
	kafkaURL    string
	databaseURL string
	partitions  int
	replication int
	topic       string
	group       string
}

func (f *scaleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kafkaURL, "kafka-url", "", "Kafka brokers, kafka://host:port or kafka+ssl://host:port, comma-separated (default $KAFKA_URL); with --database-url it selects the scale-out mode")
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL (default $DATABASE_URL); with --kafka-url it selects the scale-out mode")
	fs.IntVar(&f.partitions, "kafka-partitions", kafka.DefaultPartitions, "partitions of the drains topic when drainpipe creates it (the most aggregators that can share the work)")
	fs.IntVar(&f.replication, "kafka-replication", 0, "replication factor of the drains topic when drainpipe creates it (0: the brokers' default)")
	fs.StringVar(&f.topic, "kafka-topic", kafka.DefaultTopic, "topic of the drain batches ($KAFKA_PREFIX is put before it)")
	fs.StringVar(&f.group, "kafka-group", kafka.DefaultGroup, "consumer group of the aggregators ($KAFKA_PREFIX is put before it)")
}

// resolve fills the URLs from Heroku's variables and reports whether the
// scale-out mode is configured.
func (f *scaleFlags) resolve() bool {
	if f.kafkaURL == "" {
		f.kafkaURL = os.Getenv("KAFKA_URL")
	}
	if f.databaseURL == "" {
		f.databaseURL = os.Getenv("DATABASE_URL")
	}
	return f.kafkaURL != "" || f.databaseURL != ""
}

// check says what is missing for the roles.
func (f *scaleFlags) check(role string) error {
	var missing []string
	if f.kafkaURL == "" {
		missing = append(missing, "Kafka (--kafka-url or KAFKA_URL)")
	}
	if f.databaseURL == "" {
		missing = append(missing, "PostgreSQL (--database-url or DATABASE_URL)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("--role %s runs the scale-out mode, which needs %s; without both, --role all runs the embedded mode", role, strings.Join(missing, " and "))
	}
	return nil
}

func (f *scaleFlags) kafkaConfig() (kafka.Config, error) {
	env := kafka.EnvFrom(os.Getenv)
	env.URL = f.kafkaURL
	kc, err := env.Config()
	if err != nil {
		return kc, err
	}
	kc.Topic, kc.Group = f.topic, f.group
	kc.Partitions, kc.Replication = int32(f.partitions), int16(f.replication)
	return kc, nil
}

// serveScaleOut runs the scale-out roles until ctx ends.
func serveScaleOut(ctx context.Context, e *env, sf *serveFlags, f *scaleFlags) error {
	if err := f.check(sf.role); err != nil {
		return err
	}
	roles, err := scaleout.ParseRoles(sf.role)
	if err != nil {
		return err
	}
	if err := sf.checkRetention(); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if sf.tlsCert != "" || sf.tlsKey != "" {
		if tlsConfig, err = tlsconf.Load(sf.tlsCert, sf.tlsKey); err != nil {
			return err
		}
	}
	if roles[scaleout.RoleAPI] && sf.adminToken == "" {
		return errors.New("the api role of the scale-out mode needs --admin-token (DRAINPIPE_ADMIN_TOKEN): every api process must share it")
	}
	kc, err := f.kafkaConfig()
	if err != nil {
		return err
	}
	// The store is opened by the node, in the background and retried
	// while PostgreSQL is unreachable: a process starts whatever the
	// state of the engines. A URL that cannot be parsed is refused now.
	if err := postgres.CheckURL(f.databaseURL); err != nil {
		return err
	}
	retention := sf.retention()
	open := func(ctx context.Context) (scaleout.Store, error) {
		st, err := postgres.Open(ctx, f.databaseURL, retention, e.log)
		if err != nil {
			return nil, err // not a typed nil
		}
		return st, nil
	}
	stopProfile, err := startCPUProfile(sf.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	scfg := sf.serverConfig()
	scfg.AdminToken, scfg.PublicURL, scfg.Dashboard = sf.adminToken, sf.publicURL, web.Handler()
	n, err := scaleout.Start(ctx, scaleout.Config{
		Roles: roles, Listen: sf.listenAddr(), TLS: tlsConfig, Kafka: kc,
		Server: scfg, Retention: retention,
	}, open, e.log)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "drainpipe %s serving %s on %s (Kafka topic %s, PostgreSQL store)\n", version, roles, n.URL, kc.TopicName())
	select {
	case <-ctx.Done():
	case err = <-n.Err():
	}
	return joinErr(err, n.Close())
}
