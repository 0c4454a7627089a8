package mgmt

import (
	"encoding/base64"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/amqp/wire"
	"github.com/warrenmq/warren/auth"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/queue"
	"github.com/warrenmq/warren/vhost"
)

// emptyProps are encoded empty message properties.
var emptyProps, _ = (&wire.Properties{}).Append(nil)

// exchangeName maps the API's name for the default exchange.
func exchangeName(name string) string {
	if name == "amq.default" {
		return vhost.DefaultExchange
	}
	return name
}

func policyName(name string) any {
	if name == "" {
		return nil
	}
	return name
}

func exchangeObject(vh string, x vhost.ExchangeInfo) object {
	return object{
		"name": x.Name, "vhost": vh, "type": x.Kind, "durable": x.Durable, "auto_delete": x.AutoDelete,
		"internal": x.Internal, "arguments": argsJSON(x.Args), "policy": policyName(x.Policy),
		"user_who_performed_action": "",
	}
}

func (s *Server) listExchanges(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
		return entriesOf(v.Exchanges(), func(x vhost.ExchangeInfo) string { return x.Name },
			func(x vhost.ExchangeInfo) object { return exchangeObject(v.Name(), x) })
	})
}

func (s *Server) getExchange(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	x, ok := v.Exchange(exchangeName(r.PathValue("name")))
	if !ok {
		return notFound()
	}
	o := exchangeObject(v.Name(), x)
	o["incoming"], o["outgoing"] = []any{}, []any{}
	writeObject(w, r, o)
	return nil
}

func (s *Server) putExchange(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, name, body, f, err := s.declareRequest(r, u)
	if err != nil {
		return err
	}
	spec := vhost.ExchangeSpec{Name: name, Durable: f.durable, AutoDelete: f.autoDelete, Args: f.args}
	if spec.Kind, err = stringField(body["type"], ""); err != nil {
		return err
	}
	if spec.Kind == "" {
		return badRequest("key_missing: type")
	}
	if spec.Internal, err = boolField(body["internal"], false); err != nil {
		return err
	}
	if err := s.access(u, v).PermitExchangeDeclare(name, spec.Args); err != nil {
		return err
	}
	_, existed := v.Exchange(name)
	if err := v.DeclareExchange(spec, false); err != nil {
		return err
	}
	created(w, !existed)
	return nil
}

// declareFields are the body fields that declaring an exchange and a
// queue share, with RabbitMQ's defaults (durable, not auto-delete).
type declareFields struct {
	durable, autoDelete bool
	args                wire.Table
}

// declareRequest reads a PUT that declares an exchange or a queue: its
// vhost and name, its body and the fields the two share.
func (s *Server) declareRequest(r *http.Request, u *auth.User) (v *vhost.VHost, name string, body map[string]any, f declareFields, err error) {
	if v, err = s.vhostFor(r, u); err != nil {
		return
	}
	if err = decodeBody(r, &body); err != nil {
		return
	}
	if f.durable, err = boolField(body["durable"], true); err != nil {
		return
	}
	if f.autoDelete, err = boolField(body["auto_delete"], false); err != nil {
		return
	}
	f.args, err = argsField(body["arguments"])
	return v, r.PathValue("name"), body, f, err
}

// argsField reads an "arguments" object as a field table.
func argsField(v any) (wire.Table, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		t, err := tableFromJSON(v)
		if err != nil {
			return nil, badRequest(err.Error())
		}
		return t, nil
	case string: // rabbitmqadmin's empty default
		if strings.TrimSpace(v) == "" {
			return nil, nil
		}
	}
	return nil, badRequest("arguments must be an object")
}

func (s *Server) deleteExchange(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	name := exchangeName(r.PathValue("name"))
	if err := s.access(u, v).Permit(auth.Configure, "exchange", name); err != nil {
		return err
	}
	if _, ok := v.Exchange(name); !ok {
		return notFound()
	}
	if err := v.DeleteExchange(name, r.URL.Query().Get("if-unused") == "true"); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// publish publishes a message as the user, as RabbitMQ's publish endpoint
// does: it answers whether the message was routed.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	name := exchangeName(r.PathValue("name"))
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	key, err := stringField(body["routing_key"], "")
	if err != nil {
		return err
	}
	if err := checkRoute(name, key); err != nil {
		return err
	}
	payload, err := stringField(body["payload"], "")
	if err != nil {
		return err
	}
	data := []byte(payload)
	switch enc, _ := stringField(body["payload_encoding"], "string"); enc {
	case "string":
	case "base64":
		if data, err = base64.StdEncoding.DecodeString(payload); err != nil {
			return badRequest("payload is not valid base64")
		}
	default:
		return badRequest("payload_encoding must be string or base64")
	}
	props, err := propertiesFromJSON(body["properties"])
	if err != nil {
		return err
	}
	raw, err := props.Append(nil)
	if err != nil {
		return badRequest(err.Error())
	}
	// As an AMQP publish by the same user would be checked.
	if err := s.access(u, v).PermitPublish(name, key); err != nil {
		return err
	}
	if err := amqp.CheckPublishProperties(u.Name, raw, uint64(len(data)), s.d.AMQP.MaxMessageSize()); err != nil {
		return err
	}
	out, err := publishTo(v, name, key, queue.BuildMessage(name, key, raw, data), &vhost.RouteScratch{})
	if err != nil {
		return err
	}
	writeJSON(w, map[string]any{"routed": out.Routed})
	return nil
}

// propertiesFromJSON reads message properties as the API gives them.
func propertiesFromJSON(v any) (*wire.Properties, error) {
	p := &wire.Properties{}
	m, ok := v.(map[string]any)
	if v != nil && !ok {
		return nil, badRequest("properties must be an object")
	}
	var err error
	str := func(key string, dst *string) {
		if err == nil {
			*dst, err = stringField(m[key], "")
		}
	}
	small := func(key string, dst *uint8) {
		if err == nil {
			var n int64
			n, err = intField(m[key], 0)
			if err == nil && (n < 0 || n > 255) {
				err = badRequest(key + " must be between 0 and 255")
			}
			*dst = uint8(n)
		}
	}
	str("content_type", &p.ContentType)
	str("content_encoding", &p.ContentEncoding)
	str("correlation_id", &p.CorrelationID)
	str("reply_to", &p.ReplyTo)
	str("expiration", &p.Expiration)
	str("message_id", &p.MessageID)
	str("type", &p.Type)
	str("user_id", &p.UserID)
	str("app_id", &p.AppID)
	str("cluster_id", &p.ClusterID)
	small("delivery_mode", &p.DeliveryMode)
	small("priority", &p.Priority)
	if err != nil {
		return nil, err
	}
	if ts, ok := m["timestamp"]; ok {
		n, err := intField(ts, 0)
		if err != nil {
			return nil, err
		}
		p.Timestamp = time.Unix(n, 0)
	}
	if h, ok := m["headers"]; ok {
		if p.Headers, err = argsField(h); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// propertiesJSON renders message properties as the API does.
func propertiesJSON(p *wire.Properties) object {
	o := object{}
	for k, v := range map[string]string{"content_type": p.ContentType, "content_encoding": p.ContentEncoding,
		"correlation_id": p.CorrelationID, "reply_to": p.ReplyTo, "expiration": p.Expiration, "message_id": p.MessageID,
		"type": p.Type, "user_id": p.UserID, "app_id": p.AppID, "cluster_id": p.ClusterID} {
		if v != "" {
			o[k] = v
		}
	}
	if p.DeliveryMode != 0 {
		o["delivery_mode"] = p.DeliveryMode
	}
	if p.Priority != 0 {
		o["priority"] = p.Priority
	}
	if !p.Timestamp.IsZero() {
		o["timestamp"] = p.Timestamp.Unix()
	}
	if p.Headers != nil {
		o["headers"] = tableJSON(p.Headers)
	}
	return o
}

func (s *Server) queueObject(v *vhost.VHost, q queue.Queue) object {
	c := q.Config()
	st := q.Stats()
	pol := v.QueuePolicies(q)
	rt := s.rates.queue(q)
	o := object{
		"name": c.Name, "vhost": v.Name(), "durable": c.Durable, "auto_delete": c.AutoDelete, "exclusive": c.Exclusive,
		"arguments": argsJSON(c.Args), "node": s.d.Node.Name, "state": "running", "type": c.Kind,
		"policy": policyName(pol.Policy), "operator_policy": policyName(pol.OperatorPolicy),
		"effective_policy_definition": pol.Effective,
		"consumers":                   st.Consumers,
		"messages":                    st.Messages(), "messages_details": details(rt.readyRate + rt.unackedRate),
		"messages_ready": st.Ready, "messages_ready_details": details(rt.readyRate),
		"messages_unacknowledged": st.Unacked, "messages_unacknowledged_details": details(rt.unackedRate),
		"message_bytes": st.ReadyBytes, "message_bytes_ready": st.ReadyBytes, "message_bytes_ram": st.Resident,
		"message_bytes_paged_out": st.ReadyBytes - st.Resident,
		"memory":                  st.Resident + 1024,
		"exclusive_consumer_tag":  nil, "single_active_consumer_tag": nil, "head_message_timestamp": nil,
		"message_stats": object{
			"publish": st.Published, "publish_details": details(rt.publishRate),
			"deliver_get": st.Delivered, "deliver_get_details": details(rt.deliverRate),
		},
	}
	if c.Node != "" {
		o["node"] = c.Node
	}
	if r, ok := q.(queue.Replicas); ok {
		leader := r.Leader()
		o["leader"], o["members"], o["online"] = leader, r.Members(), r.Online()
		if leader != "" {
			o["node"] = leader
		}
	}
	if st.Down {
		o["state"] = "down"
	}
	if !st.LastUsed.IsZero() && st.Consumers == 0 {
		o["idle_since"] = st.LastUsed.UTC().Format("2006-01-02T15:04:05.000-07:00")
	}
	return o
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
		return entriesOf(v.Queues(), queue.Queue.Name, func(q queue.Queue) object { return s.queueObject(v, q) })
	})
}

// queueRequest returns the queue the request names and the request's
// JSON body.
func (s *Server) queueRequest(r *http.Request, u *auth.User) (*vhost.VHost, queue.Queue, map[string]any, error) {
	v, q, err := s.queueFor(r, u)
	if err != nil {
		return nil, nil, nil, err
	}
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return nil, nil, nil, err
	}
	return v, q, body, nil
}

// queueFor returns the queue the request names.
func (s *Server) queueFor(r *http.Request, u *auth.User) (*vhost.VHost, queue.Queue, error) {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return nil, nil, err
	}
	for _, q := range v.Queues() {
		if q.Name() == r.PathValue("name") {
			return v, q, nil
		}
	}
	return nil, nil, notFound()
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, err := s.queueFor(r, u)
	if err != nil {
		return err
	}
	writeObject(w, r, s.queueObject(v, q))
	return nil
}

func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, name, _, f, err := s.declareRequest(r, u)
	if err != nil {
		return err
	}
	spec := vhost.QueueSpec{Name: name, Durable: f.durable, AutoDelete: f.autoDelete, Args: f.args}
	if err := s.access(u, v).PermitQueueDeclare(name, spec.Args); err != nil {
		return err
	}
	_, missing := v.Queue(name, 0)
	if _, err := v.DeclareQueue(spec, false); err != nil {
		return err
	}
	created(w, missing != nil)
	return nil
}

func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, err := s.queueFor(r, u)
	if err != nil {
		return err
	}
	if err := s.access(u, v).Permit(auth.Configure, "queue", q.Name()); err != nil {
		return err
	}
	query := r.URL.Query()
	if _, err := v.DeleteQueue(q.Name(), q.Config().Owner, query.Get("if-unused") == "true", query.Get("if-empty") == "true"); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) purgeQueue(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, err := s.queueFor(r, u)
	if err != nil {
		return err
	}
	if err := s.access(u, v).Permit(auth.Read, "queue", q.Name()); err != nil {
		return err
	}
	if _, err := v.PurgeQueue(q.Name(), q.Config().Owner); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getMessages takes messages from a queue as RabbitMQ's get endpoint does:
// count of them, then acknowledged, requeued or rejected as ackmode says.
func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	v, q, body, err := s.queueRequest(r, u)
	if err != nil {
		return err
	}
	count, err := intField(body["count"], 1)
	if err != nil {
		return err
	}
	if count < 1 || count > 10000 {
		return badRequest("count must be between 1 and 10000")
	}
	ackmode, _ := stringField(body["ackmode"], "")
	var how queue.Settlement
	switch ackmode {
	case "ack_requeue_true":
		how = queue.Release // as a nack: the return does not count
	case "reject_requeue_true":
		how = queue.Requeue
	case "ack_requeue_false":
		how = queue.Ack
	case "reject_requeue_false":
		how = queue.Discard
	default:
		return badRequest("ackmode must be one of ack_requeue_true, ack_requeue_false, reject_requeue_true, reject_requeue_false")
	}
	encoding, _ := stringField(body["encoding"], "auto")
	if encoding != "auto" && encoding != "base64" {
		return badRequest("encoding must be auto or base64")
	}
	truncate, err := intField(body["truncate"], -1)
	if err != nil {
		return err
	}
	if err := s.access(u, v).Permit(auth.Read, "queue", q.Name()); err != nil {
		return err
	}
	var taken []queue.Entry
	items := []object{}
	for range count {
		e, left, ok := q.Get(false)
		if !ok {
			break
		}
		taken = append(taken, e)
		items = append(items, messageObject(e, left, encoding, truncate))
	}
	if len(taken) > 0 {
		q.Settle(nil, taken, how)
	}
	writeJSON(w, items)
	return nil
}

// messageObject renders a message as the get endpoint does.
func messageObject(e queue.Entry, left int, encoding string, truncate int64) object {
	m := e.Msg
	props, _ := m.Props.Decode()
	body := m.Body
	if truncate >= 0 && int64(len(body)) > truncate {
		body = body[:truncate]
	}
	o := object{
		"payload_bytes": len(m.Body), "redelivered": e.Redelivered, "exchange": m.Exchange, "routing_key": m.RoutingKey,
		"message_count": left, "properties": propertiesJSON(&props),
	}
	if encoding == "auto" && utf8.Valid(body) {
		o["payload"], o["payload_encoding"] = string(body), "string"
	} else {
		o["payload"], o["payload_encoding"] = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return o
}

// propertiesKey is RabbitMQ's name for a binding among those between the
// same two ends: the routing key, escaped, and a digest of the arguments.
func propertiesKey(key string, args wire.Table) string {
	if key == "" && len(args) == 0 {
		return "~"
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hexByte(c)))
	}
	if len(args) > 0 {
		h := fnv.New32a()
		h.Write([]byte(exchange.CanonicalArgs(args)))
		b.WriteString("~" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)))
	}
	return b.String()
}

func hexByte(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func bindingObject(vh string, b vhost.BindingInfo) object {
	return object{
		"source": b.Source, "vhost": vh, "destination": b.Destination, "destination_type": b.DestinationType,
		"routing_key": b.Key, "arguments": argsJSON(b.Args), "properties_key": propertiesKey(b.Key, b.Args),
	}
}

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	return s.listInVhosts(w, r, u, func(v *vhost.VHost) []entry {
		return entriesOf(v.Bindings(), func(vhost.BindingInfo) string { return "" },
			func(b vhost.BindingInfo) object { return bindingObject(v.Name(), b) })
	})
}

// bindingsWhere lists the bindings of the request's vhost that keep says.
func (s *Server) bindingsWhere(w http.ResponseWriter, r *http.Request, u *auth.User, keep func(b vhost.BindingInfo) bool) error {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return err
	}
	var items []object
	for _, b := range v.Bindings() {
		if keep(b) {
			items = append(items, bindingObject(v.Name(), b))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) exchangeBindings(side string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, err := s.vhostFor(r, u)
		if err != nil {
			return err
		}
		name := exchangeName(r.PathValue("name"))
		if _, ok := v.Exchange(name); !ok {
			return notFound()
		}
		return s.bindingsWhere(w, r, u, func(b vhost.BindingInfo) bool {
			if side == "source" {
				return b.Source == name
			}
			return b.DestinationType == "exchange" && b.Destination == name
		})
	}
}

func (s *Server) queueBindings(w http.ResponseWriter, r *http.Request, u *auth.User) error {
	if _, _, err := s.queueFor(r, u); err != nil {
		return err
	}
	name := r.PathValue("name")
	return s.bindingsWhere(w, r, u, func(b vhost.BindingInfo) bool { return b.DestinationType == "queue" && b.Destination == name })
}

// destType is the destination type the path letter names.
func destType(kind string) string {
	if kind == "q" {
		return "queue"
	}
	return "exchange"
}

// between matches the bindings between the request's two ends.
func between(r *http.Request, kind string) func(b vhost.BindingInfo) bool {
	src, dst := exchangeName(r.PathValue("source")), r.PathValue("destination")
	return func(b vhost.BindingInfo) bool {
		return b.Source == src && b.DestinationType == destType(kind) && b.Destination == dst
	}
}

// endsExist checks both ends of a binding path exist.
func endsExist(v *vhost.VHost, r *http.Request, kind string) error {
	if _, ok := v.Exchange(exchangeName(r.PathValue("source"))); !ok {
		return notFound()
	}
	dst := r.PathValue("destination")
	if kind == "q" {
		if _, err := v.Queue(dst, 0); err != nil {
			return notFound()
		}
	} else if _, ok := v.Exchange(dst); !ok {
		return notFound()
	}
	return nil
}

func (s *Server) listBindingsBetween(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, err := s.vhostFor(r, u)
		if err != nil {
			return err
		}
		if err := endsExist(v, r, kind); err != nil {
			return err
		}
		return s.bindingsWhere(w, r, u, between(r, kind))
	}
}

func (s *Server) postBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, err := s.vhostFor(r, u)
		if err != nil {
			return err
		}
		if err := endsExist(v, r, kind); err != nil {
			return err
		}
		var body map[string]any
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		key, err := stringField(body["routing_key"], "")
		if err != nil {
			return err
		}
		args, err := argsField(body["arguments"])
		if err != nil {
			return err
		}
		src, dst := exchangeName(r.PathValue("source")), r.PathValue("destination")
		if err := s.access(u, v).PermitBind(destType(kind), dst, src, key); err != nil {
			return err
		}
		if kind == "q" {
			err = v.BindQueue(dst, src, key, args, 0)
		} else {
			err = v.BindExchange(dst, src, key, args)
		}
		if err != nil {
			return err
		}
		// As RabbitMQ: the binding's path relative to the request's.
		w.Header().Set("Location", url.PathEscape(dst)+"/"+url.PathEscape(propertiesKey(key, args)))
		w.WriteHeader(http.StatusCreated)
		return nil
	}
}

// findBinding returns the binding the request's properties key names.
func (s *Server) findBinding(r *http.Request, u *auth.User, kind string) (*vhost.VHost, vhost.BindingInfo, error) {
	v, err := s.vhostFor(r, u)
	if err != nil {
		return nil, vhost.BindingInfo{}, err
	}
	match := between(r, kind)
	want := r.PathValue("props")
	for _, b := range v.Bindings() {
		// The key arrives escaped once more (as clients send it) or not
		// (as it reads); RabbitMQ takes both.
		pk := propertiesKey(b.Key, b.Args)
		if unescaped, err := url.PathUnescape(pk); match(b) && (pk == want || err == nil && unescaped == want) {
			return v, b, nil
		}
	}
	return nil, vhost.BindingInfo{}, notFound()
}

func (s *Server) getBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, b, err := s.findBinding(r, u, kind)
		if err != nil {
			return err
		}
		writeObject(w, r, bindingObject(v.Name(), b))
		return nil
	}
}

func (s *Server) deleteBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *auth.User) error {
		v, b, err := s.findBinding(r, u, kind)
		if err != nil {
			return err
		}
		if err := s.access(u, v).PermitBind(destType(kind), b.Destination, b.Source, b.Key); err != nil {
			return err
		}
		if kind == "q" {
			err = v.UnbindQueue(b.Destination, b.Source, b.Key, b.Args)
		} else {
			err = v.UnbindExchange(b.Destination, b.Source, b.Key, b.Args)
		}
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
