package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cairndb/cairn/e2e"
	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// registerHistory records puts and linearizable gets of one register per
// shard, made on whichever node leads the shard at the time, in the e2e
// package's model so that porcupine can check them.
type registerHistory struct {
	c     *testCluster
	start time.Time

	mu      sync.Mutex
	records []e2e.Record
	streams int
}

func (h *registerHistory) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *registerHistory) newStream() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams++
	return h.streams
}

func (h *registerHistory) add(r e2e.Record) {
	h.mu.Lock()
	r.ID = len(h.records)
	h.records = append(h.records, r)
	h.mu.Unlock()
}

func (h *registerHistory) leaderOf(shard uint32) *Node {
	for _, n := range h.c.running() {
		if s := n.Shard(shard); s != nil && s.IsLeader() {
			return n
		}
	}
	return nil
}

// refused reports whether a Propose error means the write was not proposed.
func refused(err error) bool {
	for _, e := range []error{ErrNotLeader, ErrNoLeader, ErrUnknownShard, ErrOverloaded, ErrShardNotReady} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// do makes one operation on shard's register through its current leader
// and records it; with no leader it waits a moment and records nothing.
func (h *registerHistory) do(client, stream int, shard uint32, put bool, value string) (r e2e.Record, done bool) {
	n := h.leaderOf(shard)
	if n == nil {
		time.Sleep(5 * time.Millisecond)
		return r, false
	}
	r = e2e.Record{Client: client, Stream: stream, Endpoint: n.NodeID(),
		Input: e2e.Input{Op: e2e.OpGet, Object: fmt.Sprint(shard), Key: "r"}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if put {
		r.Input.Op, r.Input.Value = e2e.OpPut, value
		cmd := &fsm.Command{Type: fsm.TypeTx, Namespace: "ns", Object: "reg", Tx: &objectstore.Tx{
			Ops: []objectstore.Op{{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: "r", Value: objectstore.Value{Data: []byte(value)}}}}},
		}}
		b, encErr := cmd.Encode()
		if encErr != nil {
			panic(encErr)
		}
		r.Call = h.now()
		var resp *fsm.Response
		resp, err = n.Propose(ctx, shard, b)
		r.Return = h.now()
		if err == nil && resp.Err != nil {
			err = resp.Err
		}
	} else {
		r.Call = h.now()
		err = n.Read(ctx, shard, false, func(rd pebble.Reader) error {
			v, _, err := objectstore.GetValue(rd, objectstore.Object{Shard: shard, Namespace: "ns", Name: "reg"}, "r")
			r.Output.Value = string(v.Data)
			return err
		})
		r.Return = h.now()
	}
	switch {
	case err == nil:
		r.Output.Outcome = e2e.OutcomeOK
	case !put || refused(err):
		r.Refused, r.Output.Outcome = true, e2e.OutcomeFailed // a failed read changes nothing
	default:
		r.Output.Outcome = e2e.OutcomeUnknown
	}
	if err != nil {
		r.Err = err.Error()
	}
	h.add(r)
	return r, true
}

// run makes operations from clients goroutines until stop is closed.
func (h *registerHistory) run(clients int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for client := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), 7))
			stream := h.newStream()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				shard := uint32(rng.IntN(h.c.shards))
				r, _ := h.do(client, stream, shard, rng.IntN(2) == 0, fmt.Sprintf("c%d-%d", client, i))
				if r.Output.Outcome == e2e.OutcomeUnknown {
					stream = h.newStream() // an unknown outcome stays open forever
				}
			}
		}()
	}
	return &wg
}

// check checks the history with porcupine and fails t unless it is
// linearizable; it returns the acknowledged writes and successful reads.
func (h *registerHistory) check(t *testing.T) (writes, reads int) {
	t.Helper()
	h.mu.Lock()
	records := append([]e2e.Record(nil), h.records...)
	h.mu.Unlock()
	for _, r := range records {
		if r.Refused || r.Output.Outcome != e2e.OutcomeOK {
			continue
		}
		if r.Input.Op == e2e.OpPut {
			writes++
		} else {
			reads++
		}
	}
	res, _ := porcupine.CheckOperationsVerbose(e2e.RegisterModel, e2e.PorcupineHistory(records), time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("the history of %d operations is not linearizable: %v", len(records), res)
	}
	return writes, reads
}

// Writes and linearizable reads run on a register of every shard while two
// nodes join and receive their shares, one of them dies and is replaced
// after the grace period, and the other is drained away. Every change of
// configuration and leadership happens under load; the history must be
// linearizable, which includes every acknowledged write being read back
// (the final reads come after the moves), and the replicas must end equal.
func TestRebalanceUnderWritesIsLinearizable(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(2*time.Second))
	h := &registerHistory{c: c, start: time.Now()}
	stop := make(chan struct{})
	wg := h.run(4, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}()

	c.join("n4")
	c.join("n5")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4", "n5"})
	c.waitLeadersSpread()
	c.stop("n5") // for good
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
	if err := c.node("n4").Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.waitPlacement([]string{"n1", "n2", "n3"})
	close(stop)
	wg.Wait()
	c.stop("n4")

	// Final reads, after every move: each shard's register as it ends.
	final := h.newStream()
	for shard := uint32(0); shard < uint32(c.shards); shard++ {
		for attempt := 0; ; attempt++ {
			r, done := h.do(-1, final, shard, false, "")
			if done && !r.Refused {
				break
			}
			if attempt > 100 {
				t.Fatalf("no final read of shard %d: %s", shard, r.Err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.ensureSameState(shard)
	}
	writes, reads := h.check(t)
	if writes < 50 || reads < 50 {
		t.Fatalf("only %d acknowledged writes and %d reads: the test checked too little", writes, reads)
	}
	t.Logf("linearizable: %d acknowledged writes, %d reads, %d operations in all", writes, reads, len(h.records))
}
