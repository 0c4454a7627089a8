package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The cluster's settings come from flags, the environment and the file;
// rabbitmq.conf's classic_config node list names seeds, as node names
// (the host's default cluster port) or as HOST:PORT.
func TestClusterSettings(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "rabbitmq.conf")
	conf := `cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = rabbit@host-a
cluster_formation.classic_config.nodes.2 = 10.0.0.2:25999
cluster_listen = 0.0.0.0:25672
`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WARREN_CLUSTER_SECRET": "from-env", "WARREN_NODE_NAME": "warren@a"}
	o, ignored, err := parse([]string{"--config", file}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := o.broker
	if !slices.Equal(b.ClusterSeeds, []string{"host-a:25672", "10.0.0.2:25999"}) || b.ClusterListen != "0.0.0.0:25672" ||
		b.ClusterSecret != "from-env" || b.NodeName != "warren@a" {
		t.Errorf("seeds %q, listen %q, secret %q, name %q", b.ClusterSeeds, b.ClusterListen, b.ClusterSecret, b.NodeName)
	}
	if !slices.Equal(ignored, []string{"cluster_formation.peer_discovery_backend"}) {
		t.Errorf("ignored keys %v", ignored)
	}
	// The flag replaces the file's list.
	o, _, err = parse([]string{"--config", file, "--cluster-seeds", "127.0.0.1:1,127.0.0.1:2"}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil || !slices.Equal(o.broker.ClusterSeeds, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Errorf("--cluster-seeds: %q, %v", o.broker.ClusterSeeds, err)
	}
	if _, _, err := parse([]string{"--cluster-seeds", "no-port"}, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
		t.Error("a seed without a port was taken")
	}
}
