package mgmt

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/cluster"
)

// Cluster is the node's cluster as the API shows and steers it;
// cluster.Node implements it.
type Cluster interface {
	Name() string
	Members() []cluster.Member
	Join(addr string) error
	Forget(name string) error
	Call(ctx context.Context, node string, m cluster.Method, payload []byte) ([]byte, error)
	Handle(m cluster.Method, h cluster.Handler)
}

// The API's calls between nodes.
const (
	methodPeerState cluster.Method = 64 + iota // this node's node object, connections and counts
	methodCloseConnection
)

// peerTimeout bounds a call for another node's part of an answer.
const peerTimeout = 3 * time.Second

// peerState is one node's part of the cluster-wide answers.
type peerState struct {
	Node        object   `json:"node"`
	Connections []object `json:"connections"`
	// Channels and Consumers count per user, for the overview's totals.
	Channels  map[string]int `json:"channels"`
	Consumers map[string]int `json:"consumers"`
	Listeners []object       `json:"listeners"`
}

// serveCluster answers the other nodes' calls.
func (s *Server) serveCluster() {
	c := s.d.Cluster
	if c == nil {
		return
	}
	c.Handle(methodPeerState, func([]byte) ([]byte, error) { return json.Marshal(s.localState()) })
	c.Handle(methodCloseConnection, func(payload []byte) ([]byte, error) {
		var req struct{ Name, Reason string }
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, err
		}
		if !s.d.AMQP.CloseConnection(req.Name, req.Reason) {
			return nil, notFound()
		}
		return nil, nil
	})
}

// localState is this node's part of the cluster-wide answers.
func (s *Server) localState() peerState {
	st := peerState{Node: s.nodeObject(), Channels: map[string]int{}, Consumers: map[string]int{}, Listeners: s.listenerObjects()}
	for _, c := range s.d.AMQP.Connections() {
		st.Connections = append(st.Connections, s.connectionObject(&c))
	}
	for _, c := range s.d.AMQP.Channels() {
		st.Channels[c.Connection.User]++
	}
	for _, c := range s.d.AMQP.Consumers() {
		st.Consumers[c.Channel.Connection.User]++
	}
	return st
}

// peerStates returns the other running nodes' states, and the names of
// the nodes that are down or did not answer.
func (s *Server) peerStates() (states []peerState, down []string) {
	c := s.d.Cluster
	if c == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	for _, m := range c.Members() {
		if m.Name == s.d.Node.Name {
			continue
		}
		if !m.Running {
			down = append(down, m.Name)
			continue
		}
		b, err := c.Call(ctx, m.Name, methodPeerState, nil)
		var st peerState
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			down = append(down, m.Name)
			continue
		}
		states = append(states, st)
	}
	return states, down
}

// nodeObjects are every node's objects, this one's first; a node that is
// down is named with running false.
func (s *Server) nodeObjects() []object {
	out := []object{s.nodeObject()}
	states, down := s.peerStates()
	for _, st := range states {
		out = append(out, st.Node)
	}
	for _, name := range down {
		out = append(out, object{"name": name, "type": "disc", "running": false})
	}
	return out
}

// remoteConnections are the other nodes' connections u may see.
func (s *Server) remoteConnections(u *auth.User) []object {
	states, _ := s.peerStates()
	var out []object
	for _, st := range states {
		for _, c := range st.Connections {
			if user, _ := c["user"].(string); user == u.Name || seesAll(u) {
				out = append(out, c)
			}
		}
	}
	return out
}

// closeRemoteConnection asks the node that holds a connection to close it.
func (s *Server) closeRemoteConnection(u *auth.User, name, reason string) error {
	states, _ := s.peerStates()
	for _, st := range states {
		for _, c := range st.Connections {
			if c["name"] != name {
				continue
			}
			if user, _ := c["user"].(string); user != u.Name && !seesAll(u) {
				return notFound()
			} else if user != u.Name && !u.HasTag(auth.TagAdministrator) {
				return forbidden("Not administrator user")
			}
			node, _ := st.Node["name"].(string)
			b, _ := json.Marshal(map[string]string{"Name": name, "Reason": reason})
			ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
			defer cancel()
			if _, err := s.d.Cluster.Call(ctx, node, methodCloseConnection, b); err != nil {
				return notFound()
			}
			return nil
		}
	}
	return notFound()
}

// clusterStatus answers GET /api/cluster (Warren's own, behind warrenctl
// cluster_status): the nodes, which run, which leads the metadata store.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	me := s.d.Node.Name
	nodes := []object{}
	leader := ""
	if c := s.d.Cluster; c != nil {
		for _, m := range c.Members() {
			nodes = append(nodes, object{"name": m.Name, "address": m.Addr, "voter": m.Voter, "leader": m.Leader, "running": m.Running})
			if m.Leader {
				leader = m.Name
			}
		}
	} else {
		nodes = append(nodes, object{"name": me, "address": "", "voter": true, "leader": true, "running": true})
		leader = me
	}
	writeObject(w, r, object{"cluster_name": s.d.ClusterName(), "node": me, "leader": leader, "nodes": nodes})
	return nil
}

// joinCluster answers POST /api/cluster/join {"address": "HOST:PORT"}.
func (s *Server) joinCluster(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	var req struct {
		Address string `json:"address"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Address == "" {
		return badRequest("address missing: the cluster address (HOST:PORT) of a node of the cluster to join")
	}
	if s.d.Cluster == nil {
		if s.d.JoinAtRestart == nil {
			return &apiError{http.StatusConflict, "not_clustered", "this node cannot join a cluster"}
		}
		// A node of its own has no cluster listener to join with: as
		// rabbitmqctl's stop_app, reset, join_cluster and start_app, it
		// resets and joins when it restarts.
		if err := s.d.JoinAtRestart(req.Address); err != nil {
			return err
		}
		writeStatusJSON(w, http.StatusAccepted, map[string]string{"status": "restart",
			"reason": "Restart the node to join: its definitions, queues and messages are dropped and the cluster's replace them"})
		return nil
	}
	if err := s.d.Cluster.Join(req.Address); err != nil {
		return &apiError{http.StatusConflict, "join_failed", err.Error()}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// forgetNode answers DELETE /api/cluster/nodes/{node}.
func (s *Server) forgetNode(w http.ResponseWriter, r *http.Request, _ *auth.User) error {
	if s.d.Cluster == nil {
		return notFound()
	}
	node := r.PathValue("node")
	if err := s.d.Cluster.Forget(node); err != nil {
		return &apiError{http.StatusConflict, "forget_failed", err.Error()}
	}
	// Its queues go with it, as RabbitMQ's forget_cluster_node removes a
	// node's classic queues.
	s.d.Vhosts.DropNode(node)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
