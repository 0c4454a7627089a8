package mgmt

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// moveBatch is how many messages a move takes before it waits for their
// new queues to have them safe and removes them from the old one.
const moveBatch = 256

// checkRoute refuses what no AMQP publish could name: an exchange (which
// then cannot exist) or a routing key of more than 255 bytes.
func checkRoute(exchange, key string) error {
	if len(exchange) > 255 {
		return notFound()
	}
	if len(key) > 255 {
		return badRequest("routing_key must be at most 255 bytes")
	}
	return nil
}

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
// queue it was routed to has it safe. The move stops at the first message
// it cannot republish (it routes nowhere, a queue refuses it, the user
// may not publish it): that message goes back to the queue, the ones
// before it are moved, and the answer says why it stopped. Going back
// does not count towards the message's delivery count or the delivery
// limit (a release, as a nack with requeue). A queue that took a message before another refused it
// keeps its copy: at worst a message is in both places, never in none.
// count (default: the messages ready when the move starts) bounds it, so
// that a move into an exchange that routes back to the queue ends. It is
// the console's way to replay a dead-letter queue; RabbitMQ's UI does the
// same with a shovel.
func (s *Server) moveMessages(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, body, err := s.queueRequest(r, u)
	if err != nil {
		return err
	}
	if _, ok := body["exchange"]; !ok {
		return badRequest("exchange missing: the exchange to move the messages to")
	}
	exchange, err := stringField(body["exchange"], "")
	if err != nil {
		return err
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
	// What can be checked before a message is taken is: a refusal then
	// returns no message to the queue.
	access := s.access(u, v)
	if err := access.Permit(auth.Read, "queue", q.Name()); err != nil {
		return err
	}
	if err := checkRoute(exchange, key); err != nil {
		return err
	}
	if _, ok := v.Exchange(exchange); !ok {
		return notFound()
	}
	if keep {
		if err := access.PermitPublish(exchange, key); err != nil {
			return err
		}
	}
	moved := 0
	var stop error
	sc := &vhost.RouteScratch{}
	for moved < int(count) && stop == nil {
		if err := r.Context().Err(); err != nil {
			stop = errors.New("the request was cancelled")
			break
		}
		var taken []queue.Entry
		var promises, backpressure queue.Promises
		for len(taken) < min(moveBatch, int(count)-moved) {
			e, _, ok := q.Get(false)
			if !ok {
				break
			}
			k := key
			if !keep {
				k = e.Msg.RoutingKey
			}
			var out queue.Outcome
			err := access.PermitPublish(exchange, k)
			if err == nil {
				out, err = publishTo(v, exchange, k, queue.BuildMessage(exchange, k, e.Msg.Props, e.Msg.Body), sc)
			}
			switch {
			case err != nil:
			case !out.Routed:
				err = badRequest("a message with routing key '" + k + "' routes to no queue from the exchange")
			case out.Rejected:
				err = badRequest("a queue of the exchange refused a message with routing key '" + k + "' (it is full)")
			}
			if err != nil {
				q.Settle(nil, []queue.Entry{e}, queue.Release)
				stop = err
				break
			}
			promises.AddAll(out.Promises)
			backpressure.AddAll(out.Backpressure)
			taken = append(taken, e)
		}
		if len(taken) == 0 {
			break
		}
		if err := promises.Wait(); err != nil {
			q.Settle(nil, taken, queue.Release)
			stop = errors.New("the messages' new queues failed to store them: " + err.Error())
			break
		}
		q.Settle(nil, taken, queue.Ack)
		moved += len(taken)
		// A store behind on its writes slows the move as it would a
		// publisher.
		_ = backpressure.Wait()
	}
	if stop != nil && moved == 0 {
		return stop
	}
	res := map[string]any{"moved": moved}
	if stop != nil {
		res["reason"] = stop.Error() + "; " + strconv.Itoa(moved) + " moved before it"
	}
	writeJSON(w, res)
	return nil
}
