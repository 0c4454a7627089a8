package mgmt

import (
	"net/http"
	"strconv"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// moveBatch is how many messages a move takes before it waits for their
// new queues to have them safe and removes them from the old one.
const moveBatch = 256

// publishTo routes a message to exchange with key and enqueues it, as a
// publish does; it returns what the publish came to.
func publishTo(v *vhost.VHost, exchange, key string, m *queue.Message, sc *vhost.RouteScratch) (queue.Outcome, error) {
	var out queue.Outcome
	qs, _, err := v.Route(exchange, key, m.Props, nil, sc)
	if err != nil {
		return out, err
	}
	queue.Publish(qs, m, &out)
	return out, nil
}

// moveMessages answers POST /api/queues/{vhost}/{name}/move {"exchange",
// "routing_key", "count"}: it republishes the queue's ready messages, with
// their properties, to the exchange (with routing_key, or each message's
// own when it is absent), and removes each from the queue only once every
// queue it was routed to has it safe. A message that routes nowhere, or
// that a queue refuses, goes back to the queue and the move stops there,
// saying why: nothing is lost, and at worst a message is in both places.
// count (default: the messages ready when the move starts) bounds it, so
// that a move into an exchange that routes back to the queue ends. It is
// the console's way to replay a dead-letter queue; RabbitMQ's UI does the
// same with a shovel.
func (s *Server) moveMessages(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, err := s.queueFor(r, u)
	if err != nil {
		return err
	}
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	exchange, err := stringField(body["exchange"], "")
	if err != nil {
		return err
	}
	if _, ok := body["exchange"]; !ok {
		return badRequest("exchange missing: the exchange to move the messages to")
	}
	exchange = exchangeName(exchange)
	key, keep := body["routing_key"].(string)
	if _, set := body["routing_key"]; set && !keep {
		return badRequest("routing_key must be a string")
	}
	count, err := intField(body["count"], int64(q.Stats().Ready))
	if err != nil {
		return err
	}
	if count < 0 {
		return badRequest("count must not be negative")
	}
	access := s.access(u, v)
	if err := access.Permit(auth.Read, "queue", q.Name()); err != nil {
		return err
	}
	moved, reason := 0, ""
	sc := &vhost.RouteScratch{}
	for moved < int(count) && reason == "" {
		var taken []queue.Entry
		var promises queue.Promises
		for len(taken) < min(moveBatch, int(count)-moved) {
			e, _, ok := q.Get(false)
			if !ok {
				break
			}
			k := key
			if !keep {
				k = e.Msg.RoutingKey
			}
			if err := access.PermitPublish(exchange, k); err != nil {
				q.Settle(nil, []queue.Entry{e}, queue.Requeue)
				q.Settle(nil, taken, queue.Requeue)
				return err
			}
			out, err := publishTo(v, exchange, k, queue.BuildMessage(exchange, k, e.Msg.Props, e.Msg.Body), sc)
			switch {
			case err != nil:
				q.Settle(nil, []queue.Entry{e}, queue.Requeue)
				q.Settle(nil, taken, queue.Requeue)
				return err
			case !out.Routed:
				reason = "a message with routing key '" + k + "' routes to no queue from the exchange"
			case out.Rejected:
				reason = "a queue of the exchange refused a message (it is full)"
			}
			if reason != "" {
				q.Settle(nil, []queue.Entry{e}, queue.Requeue)
				break
			}
			promises.AddAll(out.Promises)
			taken = append(taken, e)
		}
		if len(taken) == 0 {
			break
		}
		if err := promises.Wait(); err != nil {
			q.Settle(nil, taken, queue.Requeue)
			reason = "the messages' new queues failed to store them: " + err.Error()
			break
		}
		q.Settle(nil, taken, queue.Ack)
		moved += len(taken)
	}
	res := map[string]any{"moved": moved}
	if reason != "" {
		res["reason"] = reason + "; " + strconv.Itoa(moved) + " moved before it"
	}
	writeJSON(w, res)
	return nil
}
