package cluster

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// FuzzReadFrame feeds arbitrary bytes to the call frame reader: it must
// return frames or an error, never panic or allocate past its limit.
func FuzzReadFrame(f *testing.F) {
	var good bytes.Buffer
	w := &frameWriter{w: bufio.NewWriter(&good)}
	_ = w.write(frameRequest, 7, methodHello, []byte("warren@a"))
	f.Add(good.Bytes())
	f.Add([]byte{0, 0, 0, 1, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	// A frame that claims 500 MiB and stops: it must cost what it sent.
	f.Add(append([]byte{0x1f, 0x40, 0, 0}, make([]byte, 200)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			_, _, _, payload, err := readFrame(r)
			if err != nil {
				return
			}
			if len(payload) > maxCallFrame {
				t.Fatalf("payload of %d bytes", len(payload))
			}
		}
	})
}

// scriptedConn is a connection whose peer sends a fixed script and reads
// whatever is written.
type scriptedConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *scriptedConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptedConn) SetDeadline(time.Time) error { return nil }
func (c *scriptedConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }

// FuzzServerHandshake feeds arbitrary openings to the cluster listener's
// handshake: anything but a proof of the secret is refused.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte(magic + "c0123456789abcdef"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &scriptedConn{r: bytes.NewReader(data)}
		if _, err := serverHandshake(c, []byte("secret")); err == nil {
			t.Fatalf("a handshake without the secret passed: %q", data)
		}
	})
}

// FuzzGroupRPC feeds arbitrary bytes to the decoders of a group call and
// of the answers: they must return a message or an error, never panic or
// allocate more than the input can hold, and what they decode must come
// back the same through the encoder.
func FuzzGroupRPC(f *testing.F) {
	tr := &GroupTransport{group: 7}
	//lint:ignore SA1019 raft still sets it
	f.Add(tr.request(groupAppendEntries, &raft.AppendEntriesRequest{Term: 2, Leader: []byte("a:1"), PrevLogEntry: 4,
		Entries: []*raft.Log{{Index: 5, Term: 2, Data: []byte("x"), AppendedAt: time.Unix(1e9, 5)}, {Index: 6, Term: 2, Extensions: []byte{}}}}, 0))
	f.Add(tr.request(groupRequestVote, &raft.RequestVoteRequest{Term: 3, LeadershipTransfer: true}, 0))
	f.Add(append(tr.request(groupInstallSnapshot, &raft.InstallSnapshotRequest{Size: 3, Configuration: []byte("c")}, 0), "abc"...))
	f.Add(appendFields(nil, wireFields(&raft.AppendEntriesResponse{Term: 3, LastLog: 9, Success: true})))
	f.Fuzz(func(t *testing.T, data []byte) {
		if group, rpc, _, err := parseGroupCall(data); err == nil {
			var snap []byte
			if rpc.Reader != nil {
				snap, _ = io.ReadAll(rpc.Reader)
			}
			again := append((&GroupTransport{group: group}).request(typeOf(t, rpc.Command), rpc.Command, 0), snap...)
			_, rpc2, _, err := parseGroupCall(again)
			if err != nil || !reflect.DeepEqual(rpc.Command, rpc2.Command) {
				t.Fatalf("re-encoded %+v: %+v, %v", rpc.Command, rpc2.Command, err)
			}
		}
		for _, m := range messages() {
			if decodeMessage(data, m) != nil {
				continue
			}
			again := reflect.New(reflect.TypeOf(m).Elem()).Interface()
			if err := decodeMessage(appendFields(nil, wireFields(m)), again); err != nil || !reflect.DeepEqual(m, again) {
				t.Fatalf("re-encoded %+v: %+v, %v", m, again, err)
			}
		}
	})
}

// typeOf is the group call type of a request.
func typeOf(t *testing.T, req any) byte {
	for typ := range byte(8) {
		if r := newRequest(typ); r != nil && reflect.TypeOf(r) == reflect.TypeOf(req) {
			return typ
		}
	}
	t.Fatalf("no type for %T", req)
	return 0
}
