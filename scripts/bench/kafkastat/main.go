// Command kafkastat prints what a Kafka topic holds, as the broker counts
// it: the number of records (the sum of the partitions' end offsets minus
// their start offsets) and the bytes of its log segments on disk. The
// scale-out benchmark (scripts/bench-scaleout) reads it before and after a
// run to report Kafka's own messages/s and bytes/s under drainpipe's load.
//
//	go run ./scripts/bench/kafkastat BROKERS TOPIC
//
// prints "records BYTES_ON_DISK".
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kafkastat BROKERS TOPIC")
		os.Exit(2)
	}
	if err := run(strings.Split(os.Args[1], ","), os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "kafkastat:", err)
		os.Exit(1)
	}
}

func run(brokers []string, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("start offsets: %w", err)
	}
	var records int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			records += o.Offset - s.Offset
		}
	})
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return fmt.Errorf("log dirs: %w", err)
	}
	var bytes int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				bytes += p.Size
			}
		})
	})
	fmt.Println(records, bytes)
	return nil
}
